/*
 * TLS over memory buffers (see tls.h): an OpenSSL SSL object whose read side is fed
 * by tls_conn_receive and whose write side is drained by tls_conn_take, for either
 * end of a connection.
 */
#include "tls/tls.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
    SSL_CTX *ssl;
};

struct tls_conn {
    SSL *ssl;
    BIO *in;          /* from the peer, read by OpenSSL */
    BIO *out;         /* to the peer, written by OpenSSL */
    struct buf early; /* plain bytes sent before the handshake is over */
};

/* OpenSSL's last error queued on this thread, as text (the queue emptied). */
static int ssl_cause(char **cause, const char *what)
{
    char text[256] = "unknown error";
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last != 0)
        ERR_error_string_n(last, text, sizeof text);
    return util_cause(cause, "%s: %s", what, text);
}

/* A context of `ssl`; or, when `failed` names what could not be loaded, NULL with *cause
   saying why (and `ssl` freed). */
static struct tls_ctx *ctx_made(SSL_CTX *ssl, const char *failed, char **cause)
{
    if (failed != NULL) {
        char *what = xasprintf("TLS: %s", failed);
        ssl_cause(cause, what);
        free(what);
        SSL_CTX_free(ssl);
        return NULL;
    }
    struct tls_ctx *ctx = xcalloc(1, sizeof *ctx);
    ctx->ssl = ssl;
    return ctx;
}

struct tls_ctx *tls_server_ctx(const char *cert, const char *key, const char *chain, char **cause)
{
    ERR_clear_error();
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (ssl == NULL) {
        ssl_cause(cause, "TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
    const char *failed = NULL;
    if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1)
        failed = cert;
    else if (chain != NULL && SSL_CTX_load_verify_locations(ssl, chain, NULL) != 1)
        failed = chain;
    else if (chain != NULL &&
             SSL_CTX_build_cert_chain(ssl, SSL_BUILD_CHAIN_FLAG_CHECK |
                                               SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR) != 1)
        failed = chain;
    else if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1)
        failed = key;
    else if (SSL_CTX_check_private_key(ssl) != 1)
        failed = key;
    return ctx_made(ssl, failed, cause);
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl); /* connections made from it hold their own reference */
    free(ctx);
}

struct tls_ctx *tls_client_ctx(const char *cafile, char **cause)
{
    ERR_clear_error();
    SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
    if (ssl == NULL) {
        ssl_cause(cause, "TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    int ok = cafile != NULL ? SSL_CTX_load_verify_locations(ssl, cafile, NULL)
                            : SSL_CTX_set_default_verify_paths(ssl);
    return ctx_made(ssl,
                    ok == 1          ? NULL
                    : cafile != NULL ? cafile
                                     : "the system's authorities",
                    cause);
}

/* The first certificate of each *.pem file of `dir` added to `ssl`'s store; how many. */
static int add_pem_dir(SSL_CTX *ssl, DIR *d, const char *dir)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ssl);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcasecmp(e->d_name + len - 4, ".pem") != 0)
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (x != NULL) {
            X509_STORE_add_cert(store, x); /* a duplicate is no error worth stopping for */
            X509_free(x);
            n++;
        }
        if (f != NULL)
            fclose(f);
        free(path);
    }
    ERR_clear_error(); /* files that are not certificates are skipped, as Twisted does */
    return n;
}

struct tls_ctx *tls_client_ctx_dir(const char *dir, char **cause)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        util_cause(cause, "TLS: trustRoots %s: %s", dir, strerror(errno));
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
    if (ssl == NULL) {
        closedir(d);
        ssl_cause(cause, "TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    int n = add_pem_dir(ssl, d, dir);
    closedir(d);
    if (n == 0) {
        SSL_CTX_free(ssl);
        util_cause(cause, "TLS: trustRoots %s: no certificate in its *.pem files", dir);
        return NULL;
    }
    return ctx_made(ssl, NULL, cause);
}

static struct tls_conn *conn_new(struct tls_ctx *ctx)
{
    struct tls_conn *c = xcalloc(1, sizeof *c);
    c->ssl = SSL_new(ctx->ssl);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->in == NULL || c->out == NULL)
        abort();                       /* out of memory, as xmalloc */
    BIO_set_mem_eof_return(c->in, -1); /* empty means "wait for more", not end of stream */
    SSL_set_bio(c->ssl, c->in, c->out);
    buf_init(&c->early, TLS_PENDING_MAX);
    return c;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
    struct tls_conn *c = conn_new(ctx);
    SSL_set_accept_state(c->ssl);
    return c;
}

struct tls_conn *tls_conn_client(struct tls_ctx *ctx, const char *host)
{
    struct tls_conn *c = conn_new(ctx);
    SSL_set_connect_state(c->ssl);
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
    } else {
        SSL_set_tlsext_host_name(c->ssl, host);
        SSL_set1_host(c->ssl, host);
    }
    ERR_clear_error();
    SSL_do_handshake(c->ssl); /* the ClientHello, into `out` */
    return c;
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl); /* frees both BIOs */
    buf_free(&c->early);
    free(c);
}

bool tls_conn_ready(const struct tls_conn *c)
{
    return SSL_is_init_finished(c->ssl);
}

const char *tls_conn_version(const struct tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

/* SSL_write of everything; with memory buffers it takes all or fails. */
static int write_all(struct tls_conn *c, const char *data, size_t len, char **cause)
{
    if (len == 0)
        return 0;
    if (BIO_ctrl_pending(c->out) + len > TLS_PENDING_MAX)
        return util_cause(cause, "TLS: more than %u bytes wait to be sent", TLS_PENDING_MAX);
    ERR_clear_error();
    int n = SSL_write(c->ssl, data, (int)len);
    if (n <= 0 || (size_t)n != len)
        return ssl_cause(cause, "TLS write");
    return 0;
}

/* Runs the handshake on; 1 when it is over, 0 when it waits for the peer, -1. */
static int handshake(struct tls_conn *c, char **cause)
{
    if (SSL_is_init_finished(c->ssl))
        return 1;
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        int sent = write_all(c, c->early.data, c->early.len, cause);
        buf_free(&c->early);
        return sent < 0 ? -1 : 1;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    long verified = SSL_get_verify_result(c->ssl);
    if (verified != X509_V_OK) {
        ERR_clear_error();
        return util_cause(cause, "TLS handshake: the certificate is refused: %s",
                          X509_verify_cert_error_string(verified));
    }
    return ssl_cause(cause, "TLS handshake");
}

int tls_conn_receive(struct tls_conn *c, const char *data, size_t len, tls_plain_cb cb, void *arg,
                     char **cause)
{
    if (BIO_ctrl_pending(c->in) + len > TLS_PENDING_MAX)
        return util_cause(cause, "TLS: more than %u bytes received and not read", TLS_PENDING_MAX);
    if (len > 0 && BIO_write(c->in, data, (int)len) != (int)len)
        return util_cause(cause, "TLS: out of memory");
    int hs = handshake(c, cause);
    if (hs <= 0)
        return hs;
    char plain[16384];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, plain, sizeof plain);
        if (n > 0) {
            if (cb(arg, plain, (size_t)n) != 0)
                return -1;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN)
            return util_cause(cause, "TLS: the peer closed the connection");
        return ssl_cause(cause, "TLS read");
    }
}

int tls_conn_send(struct tls_conn *c, const char *data, size_t len, char **cause)
{
    if (!SSL_is_init_finished(c->ssl)) {
        if (buf_add(&c->early, data, len) != 0)
            return util_cause(cause, "TLS: more than %u bytes wait for the handshake",
                              TLS_PENDING_MAX);
        return 0;
    }
    return write_all(c, data, len, cause);
}

size_t tls_conn_take(struct tls_conn *c, char *buf, size_t cap)
{
    int n = cap > 0 ? BIO_read(c->out, buf, cap > (size_t)INT32_MAX ? INT32_MAX : (int)cap) : 0;
    return n > 0 ? (size_t)n : 0;
}
