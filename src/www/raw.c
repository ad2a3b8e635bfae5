/*
 * Raw log downloads (/raw, /raw_inline): the answer is produced as the client
 * takes it, RAW_BATCH chunks read from the database at a time on a pooled
 * connection, so memory stays flat whatever the size of the log.
 */
#include "www/internal.h"

#include <stdlib.h>
#include <string.h>

#define RAW_BATCH 8

struct raw_stream {
    struct www *w;
    struct www_raw *raw;
    long long next_line;
    struct buf pending;
    size_t sent; /* of pending */
    bool done;
};

static int fill_batch(struct raw_stream *s, char **cause)
{
    struct db *db = www_pool_get(s->w, cause);
    if (db == NULL)
        return -1;
    struct db_param p[] = {DB_INT(s->raw->logid), DB_INT(s->next_line), DB_INT(RAW_BATCH)};
    struct db_res *r =
        db_query_binary(db,
                        "SELECT last_line, compressed, content FROM logchunks "
                        "WHERE logid = ? AND first_line >= ? ORDER BY first_line LIMIT ?",
                        p, 3, cause);
    www_pool_put(s->w, db);
    if (r == NULL)
        return -1;
    buf_reset(&s->pending);
    s->sent = 0;
    struct buf chunk;
    buf_init(&chunk, DB_CHUNK_MAX);
    int rc = 0;
    for (size_t i = 0; i < db_res_rows(r) && rc == 0; i++) {
        size_t len;
        const unsigned char *data = db_res_blob(r, i, 2, &len);
        buf_reset(&chunk);
        rc = db_chunk_decode((int)db_res_int(r, i, 1), data, len, &chunk, cause);
        for (size_t k = 0; rc == 0 && k < chunk.len;) {
            const char *line = chunk.data + k;
            const char *nl = memchr(line, '\n', chunk.len - k);
            size_t n = nl != NULL ? (size_t)(nl - line) : chunk.len - k;
            size_t skip = s->raw->strip && n > 0 ? 1 : 0;
            buf_add(&s->pending, line + skip, n - skip);
            buf_addc(&s->pending, '\n');
            k += n + 1;
        }
        s->next_line = db_res_int(r, i, 0) + 1;
    }
    if (db_res_rows(r) == 0)
        s->done = true;
    buf_free(&chunk);
    db_res_free(r);
    return rc;
}

static ssize_t raw_reader_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct raw_stream *s = cls;
    while (s->sent == s->pending.len) {
        char *cause = NULL;
        if (s->done || fill_batch(s, &cause) < 0) {
            if (cause != NULL)
                log_error("www: raw log %lld: %s", s->raw->logid, cause);
            free(cause);
            return s->done ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = s->pending.len - s->sent;
    if (n > max)
        n = max;
    memcpy(out, s->pending.data + s->sent, n);
    s->sent += n;
    return (ssize_t)n;
}

static void raw_free_cb(void *cls)
{
    struct raw_stream *s = cls;
    www_raw_free(s->raw);
    buf_free(&s->pending);
    free(s);
}

void www_raw_free(struct www_raw *r)
{
    if (r == NULL)
        return;
    free(r->content_type);
    free(r->filename);
    free(r->prefix);
    free(r->bytes);
    free(r);
}

enum MHD_Result www_send_raw(struct www *w, struct MHD_Connection *c, struct www_raw *raw)
{
    char type[64], *disp = NULL;
    snprintf(type, sizeof type, "%s; charset=utf-8", raw->content_type);
    if (raw->filename != NULL)
        disp = xasprintf("attachment; filename=%s", raw->filename);
    struct MHD_Response *r;
    if (raw->bytes != NULL) {
        r = MHD_create_response_from_buffer(raw->n_bytes, raw->bytes, MHD_RESPMEM_MUST_COPY);
        www_raw_free(raw);
    } else {
        struct raw_stream *s = xcalloc(1, sizeof *s);
        s->w = w;
        s->raw = raw;
        buf_init(&s->pending, 0);
        if (raw->prefix != NULL)
            buf_addstr(&s->pending, raw->prefix);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, raw_reader_cb, s,
                                              raw_free_cb);
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (disp != NULL)
        MHD_add_response_header(r, "Content-Disposition", disp);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    free(disp);
    return ret;
}
