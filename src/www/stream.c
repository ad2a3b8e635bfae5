/*
 * Sending answers that are written piece by piece (a www_producer: long
 * collections, log contents, raw logs).  The pieces are written at once while
 * they stay under WWW_ANSWER_MAX bytes: a short answer then goes out whole,
 * with its Content-Length, and may be kept by the cache like any other.  A
 * longer one goes out as the client reads it (chunked): the text written so
 * far first, then one piece at a time, each written when libmicrohttpd asks
 * for more, on a database connection borrowed for that piece.  What a slow
 * client holds is then the piece it has not read yet; a client that reads
 * nothing for the idle timeout is closed by libmicrohttpd.
 *
 * Whatever the number of connections, the answers held for clients have a
 * ceiling: each whole answer takes its bytes from the server's budget
 * (WWW_ANSWER_BUDGET) until libmicrohttpd frees it, each streamed one its
 * first text or WWW_STREAM_RESERVE, whichever is more, and an answer the
 * budget cannot take is answered 503 (a later piece that outgrows what its
 * stream took is counted, never refused: the answer is under way).
 *
 * A piece that was slow to read on a request thread (WWW_SLOW) is made on one
 * of the threads for slow reads (w->slow), and so is every later piece of that
 * answer: the connection is suspended from libmicrohttpd's content callback,
 * which returns 0 and is called again once the piece is written.
 *
 * A client whose Accept-Encoding takes gzip gets it (gzip.c), except for
 * answers shorter than WWW_GZIP_MIN and byte ranges; a streamed answer then
 * holds its deflate stream's state too, counted with its piece.
 */
#include "www/internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct stream {
    struct www_job job; /* first: a piece made on a thread for slow reads */
    struct www_producer p;
    char *what;      /* for the log */
    struct buf text; /* what goes out next (compressed when gz) */
    size_t sent;
    bool done;
    struct www_deflate *gz; /* gzip: the piece is written to `plain`, then compressed */
    struct buf plain;
    struct www_budget *budget;
    size_t held; /* of the budget */
    struct www_jobs *slow;
    struct MHD_Connection *conn;
    bool slow_pieces; /* a piece was slow (WWW_SLOW): every next one is made there too */
    bool waiting;     /* a piece is being made there: its outcome in rc, cause */
    int rc;
    char *cause;
};

/* A whole answer's text and what it holds of the budget, freed with the response. */
struct whole {
    struct www_budget *budget;
    char *text;
    size_t len;
};

static bool budget_try(struct www_budget *b, size_t n)
{
    size_t used = atomic_load(&b->used);
    do {
        if (used > b->max || n > b->max - used)
            return false;
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    return true;
}

/* Takes `n` bytes of the answer's budget; when it is short, the cache's stale answers are
   dropped first (they hold their bytes until their slot is reused). */
static bool budget_take(const struct www_answer *a, size_t n)
{
    if (a->budget == NULL || budget_try(a->budget, n))
        return true;
    if (a->cache == NULL)
        return false;
    www_cache_expire(a->cache);
    return budget_try(a->budget, n);
}

static void budget_give(struct www_budget *b, size_t n)
{
    if (b != NULL)
        atomic_fetch_sub(&b->used, n);
}

enum MHD_Result www_send_busy(struct MHD_Connection *c, const char *msg)
{
    json_t *o = json_pack("{ss}", "error", msg);
    size_t len;
    char *text = www_json_dump(o, WWW_JSON_SPACED, &len);
    json_decref(o);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "Retry-After", "5");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, r);
    MHD_destroy_response(r);
    return ret;
}

/* 503: the answers held for clients are at their ceiling. */
static enum MHD_Result send_busy(struct MHD_Connection *c)
{
    return www_send_busy(c, "the master is busy: too many answers are being sent; try again later");
}

const char *www_json_type(enum www_json_style style)
{
    return style == WWW_JSON_COMPACT ? "application/json; charset=utf-8"
                                     : "text/plain; charset=utf-8";
}

bool www_wants_gzip(struct MHD_Connection *c, const struct www_answer *a)
{
    return !a->identity && www_gzip_accepted(MHD_lookup_connection_value(
                               c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
}

struct www_answer www_api_answer(struct www *w, const struct www_req *req, const char *key,
                                 unsigned long writes)
{
    return (struct www_answer){.type = www_json_type(req->style),
                               .cache = w->cache,
                               .key = key,
                               .tables = req->ep->tables,
                               .writes = writes,
                               .whole_max = w->answer_max,
                               .budget = &w->answers,
                               .slow = w->slow};
}

static enum MHD_Result queue(struct MHD_Connection *c, const struct www_answer *a,
                             struct MHD_Response *r, size_t len, bool gz)
{
    unsigned status = a->status != 0 ? a->status : MHD_HTTP_OK;
    MHD_add_response_header(r, "Content-Type", a->type);
    if (a->disposition != NULL)
        MHD_add_response_header(r, "Content-Disposition", a->disposition);
    for (const char *const *h = a->headers; h != NULL && h[0] != NULL; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    if (gz)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    if (!a->identity) /* the same URL may be answered in gzip */
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (a->ranges)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (a->content_range != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, a->content_range);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    if (a->key != NULL && a->cache != NULL)
        www_cache_put(a->cache, a->key, c, a->tables, a->writes, status, r, len);
    else
        MHD_destroy_response(r);
    return ret;
}

static void whole_free_cb(void *cls)
{
    struct whole *h = cls;
    budget_give(h->budget, h->len);
    free(h->text);
    free(h);
}

enum MHD_Result www_send_text(struct MHD_Connection *c, const struct www_answer *a, char *text,
                              size_t len)
{
    bool gz = len >= WWW_GZIP_MIN && www_wants_gzip(c, a);
    if (gz) {
        char *plain = text;
        text = www_gzip(plain, len, &len);
        free(plain);
    }
    if (!budget_take(a, len)) {
        free(text);
        return send_busy(c);
    }
    struct whole *h = xmalloc(sizeof *h);
    *h = (struct whole){a->budget, text, len};
    return queue(
        c, a, MHD_create_response_from_buffer_with_free_callback_cls(len, text, whole_free_cb, h),
        len, gz);
}

/* The next piece into s->text: the producer's, or under gzip what deflate makes of it (maybe
   nothing yet: the caller asks again). */
static int next_piece(struct stream *s, char **cause)
{
    if (s->gz == NULL)
        return s->p.fill(s->p.state, &s->text, cause);
    buf_reset(&s->plain);
    int rc = s->p.fill(s->p.state, &s->plain, cause);
    if (rc >= 0)
        www_deflate(s->gz, s->plain.data, s->plain.len, rc == 0, &s->text);
    return rc;
}

static void piece_run(struct www_job *job)
{
    struct stream *s = (struct stream *)job;
    s->rc = next_piece(s, &s->cause);
}

/* The next piece's outcome, made here or (WWW_SLOW) on a thread for slow reads; while
   that is under way s->waiting is set, and the connection suspended until it is made. */
static int piece(struct stream *s, char **cause)
{
    if (s->waiting) {
        s->waiting = false;
        *cause = s->cause;
        s->cause = NULL;
        return s->job.cancelled ? util_cause(cause, "the master is stopping") : s->rc;
    }
    buf_free(&s->text); /* the first text may have been long: keep one piece only */
    buf_init(&s->text, 0);
    s->sent = 0;
    int rc = s->slow_pieces ? WWW_SLOW : next_piece(s, cause);
    if (rc != WWW_SLOW)
        return rc;
    s->slow_pieces = true;
    s->job = (struct www_job){.run = piece_run};
    s->waiting = true;
    /* queued, or refused (the queue is full); never run here, as without threads for slow
       reads there is no allowance, and no WWW_SLOW */
    if (www_jobs_submit(s->slow, &s->job, s->conn) == 0)
        return 1;
    s->waiting = false;
    return util_cause(cause, "too many slow reads are waiting");
}

static ssize_t reader_cb(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    while (s->sent == s->text.len) {
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        char *cause = NULL;
        int rc = piece(s, &cause);
        if (rc == 1 && s->waiting)
            return 0; /* called again once resumed */
        if (rc < 0) {
            log_error("www: GET %s: %s (answer cut short)", s->what, cause ? cause : "?");
            free(cause);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        s->done = rc == 0;
        size_t holds = s->text.len + s->plain.len + (s->gz != NULL ? WWW_GZIP_STATE : 0);
        if (holds > s->held && s->budget != NULL) { /* counted, never refused */
            atomic_fetch_add(&s->budget->used, holds - s->held);
            s->held = holds;
        }
    }
    size_t n = s->text.len - s->sent;
    if (n > max)
        n = max;
    memcpy(out, s->text.data + s->sent, n);
    s->sent += n;
    return (ssize_t)n;
}

static void stream_free_cb(void *cls)
{
    struct stream *s = cls;
    budget_give(s->budget, s->held);
    free(s->cause);
    s->p.free(s->p.state);
    www_deflate_free(s->gz);
    buf_free(&s->plain);
    buf_free(&s->text);
    free(s->what);
    free(s);
}

enum MHD_Result www_send_stream(struct MHD_Connection *c, const struct www_answer *a,
                                const char *what, const struct www_producer *p)
{
    struct buf text;
    buf_init(&text, 0);
    char *cause = NULL;
    int rc = a->slow_reads ? WWW_SLOW : 1;
    while (rc == 1 && text.len <= a->whole_max)
        rc = p->fill(p->state, &text, &cause);
    bool slow = rc == WWW_SLOW; /* what is written so far goes first, the rest from there */
    if (rc <= 0 && !slow) {
        p->free(p->state);
        if (rc == 0) {
            size_t len = text.len;
            return www_send_text(c, a, buf_take(&text), len);
        }
        log_error("www: GET %s: %s", what, cause);
        enum MHD_Result ret = www_send_error(c, 500, cause);
        free(cause);
        buf_free(&text);
        return ret;
    }
    bool gz = www_wants_gzip(c, a);
    size_t reserve = text.len > WWW_STREAM_RESERVE ? text.len : WWW_STREAM_RESERVE;
    reserve += gz ? WWW_GZIP_STATE : 0;
    if (!budget_take(a, reserve)) {
        p->free(p->state);
        buf_free(&text);
        return send_busy(c);
    }
    struct stream *s = xcalloc(1, sizeof *s);
    s->p = *p;
    s->what = xstrdup(what);
    s->text = text;
    s->budget = a->budget;
    s->held = reserve;
    s->slow = a->slow;
    s->conn = c;
    s->slow_pieces = slow;
    if (gz) {
        s->gz = www_deflate_new();
        buf_init(&s->text, 0);
        www_deflate(s->gz, text.data, text.len, false, &s->text);
        buf_free(&text);
    }
    struct www_answer streamed = *a;
    streamed.key = NULL; /* only whole answers are kept */
    /* a range has a Content-Length */
    uint64_t size = a->length > 0 ? a->length : MHD_SIZE_UNKNOWN;
    return queue(
        c, &streamed,
        MHD_create_response_from_callback(size, WWW_STREAM_BLOCK, reader_cb, s, stream_free_cb), 0,
        gz);
}
