/*
 * Log lines as the client takes them: raw downloads (/raw, /raw_inline) and,
 * through www_log_lines, the lines of /contents.  A few chunks are read from
 * the database at a time on a pooled connection and their lines written out
 * until a piece holds WWW_PIECE_MAX bytes, so memory stays flat whatever the
 * size of the log or of its chunks.  A download may be asked for one byte
 * range (Range: headers.c reads it, logindex.c knows where its bytes are).
 */
#include "www/internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Lines [line, last] of one decoded chunk whose lines end at `chunk_last`, from *next on,
   until `out` holds `full` bytes; false if it filled up before the chunk's end. */
static bool chunk_lines(const struct buf *chunk, long long line, long long chunk_last,
                        long long *next, long long last, struct buf *out, size_t full,
                        www_line_cb put, void *arg)
{
    const char *p = chunk->data != NULL ? chunk->data : "";
    const char *end = p + chunk->len;
    for (; line <= chunk_last && line <= last; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        if (line >= *next) {
            if (out->len >= full)
                return false;
            put(out, p, (size_t)(stop - p), arg);
            *next = line + 1;
        }
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    if (*next <= chunk_last)
        *next = chunk_last + 1; /* a chunk with fewer lines than it says */
    return true;
}

int www_log_chunks(struct www *w, long long logid, long long from, long long last, www_chunk_cb cb,
                   void *arg, char **cause)
{
    struct db *db = www_pool_get(w, cause);
    if (db == NULL)
        return -1;
    /* PostgreSQL keeps line numbers in 32 bits and would refuse a larger bound */
    long long top = db_kind(db) == DB_PG && last > INT_MAX ? INT_MAX : last;
    struct db_param p[] = {DB_INT(logid), DB_INT(from), DB_INT(top), DB_INT(WWW_LOG_BATCH)};
    if (from > top) {
        www_pool_put(w, db);
        return 0;
    }
    /* By last_line: the chunks of a log do not overlap, so that is their order too, and
       its index finds the first chunk wanted at once.  By first_line, SQLite walked the
       log's chunks from its first line for every batch. */
    struct db_res *r = db_query_binary(db,
                                       "SELECT first_line, last_line, compressed, content "
                                       "FROM logchunks WHERE logid = ? AND last_line >= ? "
                                       "AND first_line <= ? ORDER BY last_line LIMIT ?",
                                       p, 4, cause);
    www_pool_put(w, db);
    if (r == NULL)
        return -1;
    struct buf chunk;
    buf_init(&chunk, DB_CHUNK_MAX);
    int rc = 0;
    bool go = true;
    for (size_t i = 0; i < db_res_rows(r) && rc == 0 && go; i++) {
        size_t len;
        const unsigned char *data = db_res_blob(r, i, 3, &len);
        buf_reset(&chunk);
        rc = db_chunk_decode((int)db_res_int(r, i, 2), data, len, &chunk, cause);
        if (rc == 0)
            go = cb(&chunk, db_res_int(r, i, 0), db_res_int(r, i, 1), arg);
    }
    bool more = !go || db_res_rows(r) == WWW_LOG_BATCH;
    buf_free(&chunk);
    db_res_free(r);
    return rc < 0 ? -1 : more ? 1 : 0;
}

struct lines_ctx {
    long long *next, last;
    struct buf *out;
    size_t full;
    www_line_cb put;
    void *arg;
    bool filled; /* the piece filled up before the chunk's end */
};

static bool lines_chunk_cb(const struct buf *chunk, long long first, long long last, void *arg)
{
    struct lines_ctx *x = arg;
    x->filled = !chunk_lines(chunk, first, last, x->next, x->last, x->out, x->full, x->put, x->arg);
    return !x->filled;
}

int www_log_lines(struct www *w, long long logid, long long *next, long long last, struct buf *out,
                  www_line_cb put, void *arg, char **cause)
{
    struct lines_ctx x = {next, last, out, out->len + WWW_PIECE_MAX, put, arg, false};
    int rc = www_log_chunks(w, logid, *next, last, lines_chunk_cb, &x, cause);
    if (rc < 0)
        return -1;
    return x.filled || (rc == 1 && *next <= last) ? 1 : 0;
}

struct raw_stream {
    struct www *w;
    struct www_raw *raw;
    long long next_line;
    bool started;
};

/* A line of a raw log: stdio logs lose their channel character. */
static void put_raw_line(struct buf *out, const char *line, size_t len, void *arg)
{
    const struct www_raw *raw = arg;
    size_t skip = raw->strip && len > 0 ? 1 : 0;
    buf_add(out, line + skip, len - skip);
    buf_addc(out, '\n');
}

static int fill_raw(void *state, struct buf *out, char **cause)
{
    struct raw_stream *s = state;
    if (!s->started && s->raw->prefix != NULL)
        buf_addstr(out, s->raw->prefix);
    s->started = true;
    return www_log_lines(s->w, s->raw->logid, &s->next_line, LLONG_MAX, out, put_raw_line, s->raw,
                         cause);
}

static void raw_stream_free(void *state)
{
    struct raw_stream *s = state;
    www_raw_free(s->raw);
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

/* A byte range of a raw log: the prefix's part of it, then lines from a checkpoint, the bytes
   before the range dropped. */
struct range_stream {
    struct www *w;
    struct www_raw *raw;
    size_t prefix_from;   /* the range's start in the prefix, when it starts there */
    bool in_prefix;       /* the prefix's part is still to be written */
    long long next, last; /* lines */
    uint64_t skip;        /* bytes to drop before the range */
    uint64_t left;        /* bytes of the range still to write */
};

static int fill_range(void *state, struct buf *out, char **cause)
{
    struct range_stream *s = state;
    size_t start = out->len;
    if (s->in_prefix) {
        size_t n = strlen(s->raw->prefix) - s->prefix_from;
        n = n < s->left ? n : (size_t)s->left;
        buf_add(out, s->raw->prefix + s->prefix_from, n);
        s->in_prefix = false;
        s->left -= n;
        return s->left > 0 ? 1 : 0;
    }
    int rc =
        www_log_lines(s->w, s->raw->logid, &s->next, s->last, out, put_raw_line, s->raw, cause);
    if (rc < 0)
        return -1;
    size_t got = out->len - start;
    size_t drop = s->skip < got ? (size_t)s->skip : got;
    memmove(out->data + start, out->data + start + drop, got - drop);
    got -= drop;
    s->skip -= drop;
    if (got > s->left)
        got = (size_t)s->left;
    out->len = start + got;
    out->data[out->len] = '\0';
    s->left -= got;
    if (s->left == 0)
        return 0;
    if (rc == 0)
        return util_cause(cause, "raw log %lld: shorter than counted (it changed)", s->raw->logid);
    return 1;
}

static void range_stream_free(void *state)
{
    struct range_stream *s = state;
    www_raw_free(s->raw);
    free(s);
}

/* The length of the whole download. */
static int raw_length(struct www *w, const struct www_raw *raw, uint64_t *len, char **cause)
{
    if (raw->bytes != NULL) {
        *len = raw->n_bytes;
        return 0;
    }
    uint64_t lines;
    if (www_logidx_length(w, raw->logid, raw->strip, raw->num_lines, &lines, cause) < 0)
        return -1;
    *len = (raw->prefix != NULL ? strlen(raw->prefix) : 0) + lines;
    return 0;
}

/* 416, with the length the range missed. */
static enum MHD_Result send_unsatisfiable(struct MHD_Connection *c, uint64_t len)
{
    static const char text[] = "{\"error\": \"the range is not satisfiable\"}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof text - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    char range[64];
    snprintf(range, sizeof range, "bytes */%llu", (unsigned long long)len);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, range);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
    MHD_destroy_response(r);
    return ret;
}

/* Bytes [first, last] of the download, 206. */
static enum MHD_Result send_part(struct www *w, struct MHD_Connection *c, struct www_answer *a,
                                 struct www_raw *raw, uint64_t first, uint64_t last, uint64_t len)
{
    char range[96];
    snprintf(range, sizeof range, "bytes %llu-%llu/%llu", (unsigned long long)first,
             (unsigned long long)last, (unsigned long long)len);
    a->status = MHD_HTTP_PARTIAL_CONTENT;
    a->identity = true;
    a->content_range = range;
    a->length = last - first + 1;
    if (raw->bytes != NULL) {
        char *part = xmalloc(a->length + 1);
        memcpy(part, raw->bytes + first, a->length);
        www_raw_free(raw);
        return www_send_text(c, a, part, a->length);
    }
    struct range_stream *s = xcalloc(1, sizeof *s);
    *s = (struct range_stream){.w = w, .raw = raw, .last = raw->num_lines - 1, .left = a->length};
    size_t plen = raw->prefix != NULL ? strlen(raw->prefix) : 0;
    if (first < plen) {
        s->in_prefix = true;
        s->prefix_from = (size_t)first;
    } else {
        uint64_t at = first - plen, offset;
        www_logidx_seek(w, raw->logid, raw->strip, raw->num_lines, at, &s->next, &offset);
        s->skip = at - offset;
    }
    struct www_producer p = {fill_range, range_stream_free, s};
    char what[160];
    snprintf(what, sizeof what, "raw log %lld (%s)", raw->logid, range);
    return www_send_stream(c, a, what, &p);
}

/* A Range header: 206, 416, or (several ranges, If-Range, none) nothing done: 0. */
static int send_range(struct www *w, struct MHD_Connection *c, struct www_answer *a,
                      struct www_raw *raw, enum MHD_Result *ret)
{
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    /* without validators, an If-Range never matches: the whole answer */
    if (range == NULL ||
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE) != NULL)
        return 0;
    uint64_t len, first, last;
    char *cause = NULL;
    if (raw_length(w, raw, &len, &cause) < 0) {
        *ret = www_send_db_error(c, "raw log", false, cause);
        free(cause);
        www_raw_free(raw);
        return 1;
    }
    switch (www_range_parse(range, len, &first, &last)) {
    case WWW_RANGE_WHOLE:
        return 0;
    case WWW_RANGE_UNSATISFIABLE:
        *ret = send_unsatisfiable(c, len);
        www_raw_free(raw);
        return 1;
    case WWW_RANGE_PART:
        break;
    }
    *ret = send_part(w, c, a, raw, first, last, len);
    return 1;
}

enum MHD_Result www_send_raw(struct www *w, struct MHD_Connection *c, struct www_raw *raw)
{
    char type[64], *disp = NULL;
    snprintf(type, sizeof type, "%s; charset=utf-8", raw->content_type);
    if (raw->filename != NULL)
        disp = xasprintf("attachment; filename=%s", raw->filename);
    struct www_answer a = {.type = type,
                           .disposition = disp,
                           .whole_max = w->answer_max,
                           .budget = &w->answers,
                           .ranges = true};
    enum MHD_Result ret;
    if (send_range(w, c, &a, raw, &ret)) {
        /* answered */
    } else if (raw->bytes != NULL) {
        char *bytes = raw->bytes;
        raw->bytes = NULL;
        ret = www_send_text(c, &a, bytes, raw->n_bytes);
        www_raw_free(raw);
    } else {
        struct raw_stream *s = xcalloc(1, sizeof *s);
        s->w = w;
        s->raw = raw;
        struct www_producer p = {fill_raw, raw_stream_free, s};
        char what[64];
        snprintf(what, sizeof what, "raw log %lld", raw->logid);
        ret = www_send_stream(c, &a, what, &p);
    }
    free(disp);
    return ret;
}
