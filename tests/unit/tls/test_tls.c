/*
 * Unit tests for src/tls: a server connection of tls_conn against an OpenSSL client,
 * the bytes between them moved by hand.  A key and a self-signed certificate are made
 * for the run in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls/tls.h"
#include "util/util.h"

static char dir[] = "/tmp/bbm-tls-XXXXXX";
static char key_path[64], cert_path[64], other_key_path[64];

static void write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static int make_files(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(other_key_path, sizeof other_key_path, "%s/other.pem", dir);
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    write_key(key_path, key);
    write_key(other_key_path, other);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    return 0;
}

static int remove_files(void **state)
{
    (void)state;
    unlink(key_path);
    unlink(cert_path);
    unlink(other_key_path);
    rmdir(dir);
    return 0;
}

/* An OpenSSL client over memory buffers, and what the server passed up. */
struct pair {
    struct tls_conn *server;
    SSL_CTX *client_ctx;
    SSL *client;
    BIO *to_client, *from_client;
    struct buf got; /* plain bytes the server received */
};

static int collect(void *arg, const char *data, size_t len)
{
    return buf_add(&((struct pair *)arg)->got, data, len);
}

static void pair_open(struct pair *p, struct tls_ctx *ctx)
{
    memset(p, 0, sizeof *p);
    p->server = tls_conn_new(ctx);
    p->client_ctx = SSL_CTX_new(TLS_client_method());
    p->client = SSL_new(p->client_ctx);
    p->to_client = BIO_new(BIO_s_mem());
    p->from_client = BIO_new(BIO_s_mem());
    SSL_set_bio(p->client, p->to_client, p->from_client);
    SSL_set_connect_state(p->client);
    buf_init(&p->got, 1 << 20);
}

static void pair_close(struct pair *p)
{
    tls_conn_free(p->server);
    SSL_free(p->client);
    SSL_CTX_free(p->client_ctx);
    buf_free(&p->got);
}

/* Moves bytes both ways until neither side has anything to say. */
static void pump(struct pair *p)
{
    for (int round = 0; round < 20; round++) {
        char data[16384];
        SSL_do_handshake(p->client);
        int n, moved = 0;
        while ((n = BIO_read(p->from_client, data, sizeof data)) > 0) {
            char *cause = NULL;
            assert_int_equal(tls_conn_receive(p->server, data, (size_t)n, collect, p, &cause), 0);
            moved = 1;
        }
        size_t m;
        while ((m = tls_conn_take(p->server, data, sizeof data)) > 0) {
            BIO_write(p->to_client, data, (int)m);
            moved = 1;
        }
        if (!moved)
            return;
    }
    fail_msg("the handshake does not settle");
}

static void test_handshake_and_data(void **state)
{
    (void)state;
    char *cause = NULL;
    struct tls_ctx *ctx = tls_server_ctx(cert_path, key_path, NULL, &cause);
    assert_non_null(ctx);
    struct pair p;
    pair_open(&p, ctx);
    tls_ctx_free(ctx); /* the connection keeps what it needs */
    /* the server speaks first (as PB's banana does): kept until the handshake is over */
    assert_int_equal(tls_conn_send(p.server, "hello", 5, &cause), 0);
    assert_false(tls_conn_ready(p.server));
    pump(&p);
    assert_true(tls_conn_ready(p.server));
    char text[16] = {0};
    assert_int_equal(SSL_read(p.client, text, sizeof text - 1), 5);
    assert_string_equal(text, "hello");
    assert_int_equal(SSL_write(p.client, "world", 5), 5);
    pump(&p);
    assert_int_equal(p.got.len, 5);
    assert_memory_equal(p.got.data, "world", 5);
    /* the client's close_notify ends the stream with a reason */
    SSL_shutdown(p.client);
    char data[4096];
    int n = BIO_read(p.from_client, data, sizeof data);
    assert_true(n > 0);
    assert_int_equal(tls_conn_receive(p.server, data, (size_t)n, collect, &p, &cause), -1);
    assert_non_null(strstr(cause, "closed"));
    free(cause);
    pair_close(&p);
}

static void test_plain_bytes_are_refused(void **state)
{
    (void)state;
    char *cause = NULL;
    struct tls_ctx *ctx = tls_server_ctx(cert_path, key_path, NULL, &cause);
    struct tls_conn *c = tls_conn_new(ctx);
    const char *plain = "\x04\x82pb\x01\x80";
    assert_int_equal(tls_conn_receive(c, plain, strlen(plain), NULL, NULL, &cause), -1);
    assert_non_null(strstr(cause, "TLS handshake"));
    free(cause);
    tls_conn_free(c);
    tls_ctx_free(ctx);
}

static void test_bounds(void **state)
{
    (void)state;
    char *cause = NULL;
    struct tls_ctx *ctx = tls_server_ctx(cert_path, key_path, NULL, &cause);
    struct tls_conn *c = tls_conn_new(ctx);
    static char big[TLS_PENDING_MAX / 4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(tls_conn_send(c, big, sizeof big, &cause), 0);
    assert_int_equal(tls_conn_send(c, "x", 1, &cause), -1);
    assert_non_null(strstr(cause, "wait for the handshake"));
    free(cause);
    tls_conn_free(c);
    tls_ctx_free(ctx);
}

static void test_bad_files(void **state)
{
    (void)state;
    char *cause = NULL;
    assert_null(tls_server_ctx("/nonexistent/cert.pem", key_path, NULL, &cause));
    assert_non_null(strstr(cause, "TLS: /nonexistent/cert.pem: "));
    assert_null(tls_server_ctx(cert_path, other_key_path, NULL, &cause));
    assert_non_null(strstr(cause, other_key_path));
    assert_non_null(strstr(cause, "values mismatch"));
    assert_null(tls_server_ctx(key_path, key_path, NULL, &cause));
    assert_non_null(strstr(cause, key_path));
    free(cause);
}

/* Moves bytes between two of our connections until both are quiet; the first error's
   cause (the client's, then the server's), or NULL. */
static char *exchange(struct tls_conn *client, struct tls_conn *server, struct buf *at_server,
                      struct buf *at_client)
{
    struct tls_conn *from[] = {client, server}, *to[] = {server, client};
    struct buf *got[] = {at_server, at_client};
    for (int round = 0; round < 20; round++) {
        int moved = 0;
        for (int side = 0; side < 2; side++) {
            char data[16384];
            size_t n;
            while ((n = tls_conn_take(from[side], data, sizeof data)) > 0) {
                char *cause = NULL;
                struct pair p = {.got = *got[side]};
                int rc = tls_conn_receive(to[side], data, n, collect, &p, &cause);
                *got[side] = p.got;
                if (rc != 0)
                    return cause;
                moved = 1;
            }
        }
        if (!moved)
            return NULL;
    }
    return xstrdup("the handshake does not settle");
}

static void test_client(void **state)
{
    (void)state;
    char *cause = NULL;
    struct tls_ctx *server_ctx = tls_server_ctx(cert_path, key_path, NULL, &cause);
    struct tls_ctx *trusting = tls_client_ctx(cert_path, &cause);
    assert_non_null(trusting);
    struct buf at_server, at_client;
    buf_init(&at_server, 1 << 16);
    buf_init(&at_client, 1 << 16);

    /* the certificate's name: data both ways */
    struct tls_conn *client = tls_conn_client(trusting, "localhost");
    struct tls_conn *server = tls_conn_new(server_ctx);
    assert_int_equal(tls_conn_send(client, "ping", 4, &cause), 0);
    assert_null(exchange(client, server, &at_server, &at_client));
    assert_true(tls_conn_ready(client));
    assert_int_equal(tls_conn_send(server, "pong", 4, &cause), 0);
    assert_null(exchange(client, server, &at_server, &at_client));
    assert_int_equal(at_server.len, 4);
    assert_memory_equal(at_server.data, "ping", 4);
    assert_int_equal(at_client.len, 4);
    assert_memory_equal(at_client.data, "pong", 4);
    tls_conn_free(client);
    tls_conn_free(server);

    /* another name: refused by the client, which says why */
    client = tls_conn_client(trusting, "example.org");
    server = tls_conn_new(server_ctx);
    cause = exchange(client, server, &at_server, &at_client);
    assert_non_null(cause);
    assert_non_null(strstr(cause, "the certificate is refused: hostname mismatch"));
    free(cause);
    cause = NULL;
    tls_conn_free(client);
    tls_conn_free(server);

    /* an address the certificate does not name */
    client = tls_conn_client(trusting, "127.0.0.1");
    server = tls_conn_new(server_ctx);
    cause = exchange(client, server, &at_server, &at_client);
    assert_non_null(strstr(cause, "IP address mismatch"));
    free(cause);
    cause = NULL;
    tls_conn_free(client);
    tls_conn_free(server);

    /* the system's authorities do not know the test's certificate */
    struct tls_ctx *system = tls_client_ctx(NULL, &cause);
    assert_non_null(system);
    client = tls_conn_client(system, "localhost");
    server = tls_conn_new(server_ctx);
    cause = exchange(client, server, &at_server, &at_client);
    assert_non_null(strstr(cause, "the certificate is refused: self-signed certificate"));
    free(cause);
    cause = NULL;
    tls_conn_free(client);
    tls_conn_free(server);

    assert_null(tls_client_ctx("/nonexistent/ca.pem", &cause));
    assert_non_null(strstr(cause, "TLS: /nonexistent/ca.pem: "));
    free(cause);
    tls_ctx_free(system);
    tls_ctx_free(trusting);
    tls_ctx_free(server_ctx);
    buf_free(&at_server);
    buf_free(&at_client);
}

/* trustRoots: the first certificate of each *.pem file of a directory, other files skipped */
static void test_client_dir(void **state)
{
    (void)state;
    char *cause = NULL;
    struct tls_ctx *server_ctx = tls_server_ctx(cert_path, key_path, NULL, &cause);
    struct tls_ctx *trusting = tls_client_ctx_dir(dir, &cause); /* cert.pem and two keys */
    assert_non_null(trusting);
    struct buf at_server, at_client;
    buf_init(&at_server, 1 << 16);
    buf_init(&at_client, 1 << 16);
    struct tls_conn *client = tls_conn_client(trusting, "localhost");
    struct tls_conn *server = tls_conn_new(server_ctx);
    assert_int_equal(tls_conn_send(client, "ping", 4, &cause), 0);
    assert_null(exchange(client, server, &at_server, &at_client));
    assert_int_equal(at_server.len, 4);
    tls_conn_free(client);
    tls_conn_free(server);

    char empty[] = "/tmp/bbm-tls-roots-XXXXXX";
    assert_non_null(mkdtemp(empty));
    char *junk = xasprintf("%s/junk.pem", empty);
    FILE *f = fopen(junk, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    assert_null(tls_client_ctx_dir(empty, &cause));
    assert_non_null(strstr(cause, "no certificate in its *.pem files"));
    free(cause);
    cause = NULL;
    unlink(junk);
    free(junk);
    rmdir(empty);
    assert_null(tls_client_ctx_dir("/nonexistent/roots", &cause));
    assert_non_null(strstr(cause, "TLS: trustRoots /nonexistent/roots: No such file"));
    free(cause);
    tls_ctx_free(trusting);
    tls_ctx_free(server_ctx);
    buf_free(&at_server);
    buf_free(&at_client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_plain_bytes_are_refused),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_client_dir),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_client),
    };
    return cmocka_run_group_tests(tests, make_files, remove_files);
}
