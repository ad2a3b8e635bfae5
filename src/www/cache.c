/*
 * Whole GET answers kept as ready libmicrohttpd responses, so that a
 * dashboard polling /api/v2/builders costs a lookup and a send instead of
 * queries and JSON.  An answer is used again only while the tables it was
 * read from have not been written by this process since (db_writes: the
 * endpoint names its tables, or any write counts) and for at most
 * WWW_CACHE_TTL_MS, which bounds how stale it can be if something else
 * writes the database.  A fixed number of slots, each
 * answer at most WWW_CACHE_MAX_BODY bytes: memory stays bounded.  An answer
 * is kept under its key and whether the client took gzip: a compressed answer
 * never reaches a client that did not ask for one.
 */
#include "www/internal.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64

struct slot {
    char *key;
    const char *const *tables;
    struct MHD_Response *resp;
    unsigned status;
    unsigned long writes;
    uint64_t at_ms;
};

struct www_cache {
    pthread_mutex_t lock;
    struct slot slots[SLOTS];
};

struct www_cache *www_cache_new(void)
{
    struct www_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void slot_clear(struct slot *s)
{
    free(s->key);
    if (s->resp != NULL)
        MHD_destroy_response(s->resp);
    memset(s, 0, sizeof *s);
}

void www_cache_free(struct www_cache *c)
{
    if (c == NULL)
        return;
    www_cache_clear(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void www_cache_clear(struct www_cache *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < SLOTS; i++)
        slot_clear(&c->slots[i]);
    pthread_mutex_unlock(&c->lock);
}

static struct slot *slot_of(struct www_cache *c, const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return &c->slots[h % SLOTS];
}

/* The key an answer is kept under: the caller's, and the encodings the client takes. */
static char *full_key(const char *key, struct MHD_Connection *conn)
{
    const char *accept =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    return xasprintf("%s\n%s", key, www_gzip_accepted(accept) ? "gzip" : "identity");
}

int www_cache_answer(struct www_cache *c, const char *key, struct MHD_Connection *conn)
{
    int ret = -1;
    char *full = full_key(key, conn);
    pthread_mutex_lock(&c->lock);
    struct slot *s = slot_of(c, full);
    if (s->key != NULL && strcmp(s->key, full) == 0) {
        if (s->writes == db_writes(s->tables) && util_mono_ms() - s->at_ms <= WWW_CACHE_TTL_MS)
            ret = MHD_queue_response(conn, s->status, s->resp) == MHD_YES;
        else
            slot_clear(s);
    }
    pthread_mutex_unlock(&c->lock);
    free(full);
    return ret;
}

/* Drops the answers too old to be used again (they hold memory until their slot is reused). */
static void expire(struct www_cache *c)
{
    uint64_t now = util_mono_ms();
    for (size_t i = 0; i < SLOTS; i++)
        if (c->slots[i].key != NULL && now - c->slots[i].at_ms > WWW_CACHE_TTL_MS)
            slot_clear(&c->slots[i]);
}

void www_cache_expire(struct www_cache *c)
{
    pthread_mutex_lock(&c->lock);
    expire(c);
    pthread_mutex_unlock(&c->lock);
}

void www_cache_put(struct www_cache *c, const char *key, struct MHD_Connection *conn,
                   const char *const *tables, unsigned long writes, unsigned status,
                   struct MHD_Response *resp, size_t bytes)
{
    if (bytes > WWW_CACHE_MAX_BODY || writes != db_writes(tables)) {
        MHD_destroy_response(resp);
        return;
    }
    char *full = full_key(key, conn);
    pthread_mutex_lock(&c->lock);
    expire(c);
    struct slot *s = slot_of(c, full);
    slot_clear(s);
    *s = (struct slot){full, tables, resp, status, writes, util_mono_ms()};
    pthread_mutex_unlock(&c->lock);
}
