/*
 * tls: TLS for a connection whose bytes the caller moves itself (libuv streams).
 *
 * OpenSSL runs over two memory buffers: what arrives from the peer is given to
 * tls_conn_receive, which hands the plain bytes it decrypts to a callback; what
 * the program sends is given to tls_conn_send.  Both leave the encrypted bytes
 * to put on the wire in the connection, taken with tls_conn_take.  Plain bytes
 * sent before the handshake is over wait (bounded) and go once it is.  Nothing
 * here blocks or touches a socket, so it works on any loop.
 *
 * A server context holds a certificate chain and its key, loaded from PEM files
 * as Twisted's "ssl:" endpoint takes them (privateKey, certKey, extraCertChain);
 * a client context holds the authorities that servers' certificates are checked
 * against.  A context is shared by the connections made from it, each of which
 * keeps it alive.  TLS 1.2 is the oldest version either side speaks.
 */
#ifndef BBM_TLS_H
#define BBM_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_ctx;
struct tls_conn;

/* How many plain bytes may wait for the handshake, and encrypted bytes for tls_conn_take. */
#define TLS_PENDING_MAX (8u << 20)

/*
 * A server context: the certificate (with any chain in the same file) from `cert`, more
 * chain certificates from `chain` (may be NULL), the private key from `key`; the key
 * must match the certificate.  Returns NULL and sets *cause when it cannot.  Free with
 * tls_ctx_free.
 */
struct tls_ctx *tls_server_ctx(const char *cert, const char *key, const char *chain, char **cause);
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * A client context that verifies servers against the authorities in `cafile` (PEM), or
 * with NULL the system's (OpenSSL's default paths, which SSL_CERT_FILE and SSL_CERT_DIR
 * override).  NULL with *cause when it cannot.  Free with tls_ctx_free.
 */
struct tls_ctx *tls_client_ctx(const char *cafile, char **cause);

/*
 * A client context that verifies servers against the first certificate of each *.pem
 * file in directory `dir` (what Twisted's "tls:" endpoint takes as trustRoots); files
 * that hold no certificate are skipped.  NULL with *cause when the directory cannot be
 * read or gives no certificate.  Free with tls_ctx_free.
 */
struct tls_ctx *tls_client_ctx_dir(const char *dir, char **cause);

/* A server-side connection of `ctx`.  Free with tls_conn_free. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx);

/*
 * A client-side connection of `ctx` to `host`: a name is sent (SNI) and must be the
 * certificate's, an address must be among its addresses.  The first handshake bytes are
 * ready for tls_conn_take at once.  Free with tls_conn_free.
 */
struct tls_conn *tls_conn_client(struct tls_ctx *ctx, const char *host);
void tls_conn_free(struct tls_conn *c);

/* Receives the plain bytes decrypted from what the peer sent; returns 0 to go on, or -1. */
typedef int (*tls_plain_cb)(void *arg, const char *data, size_t len);

/*
 * Bytes from the peer: advances the handshake and passes each piece of plain data to
 * `cb`.  Returns 0, or -1 with *cause on a TLS error (a failed handshake, a bad
 * record), on too many bytes waiting, or when `cb` returned -1 (cause left to it).
 */
int tls_conn_receive(struct tls_conn *c, const char *data, size_t len, tls_plain_cb cb, void *arg,
                     char **cause);

/* Plain bytes to send (encrypted now, or kept until the handshake is over).  0 or -1. */
int tls_conn_send(struct tls_conn *c, const char *data, size_t len, char **cause);

/*
 * Takes up to `cap` encrypted bytes waiting to be written to the peer; returns how many
 * (0 when none).  Call it after each receive and send until it returns 0.
 */
size_t tls_conn_take(struct tls_conn *c, char *buf, size_t cap);

/* Whether the handshake is over. */
bool tls_conn_ready(const struct tls_conn *c);

/* The protocol version agreed ("TLSv1.3"), for logs. */
const char *tls_conn_version(const struct tls_conn *c);

#endif
