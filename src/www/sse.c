/*
 * Server-sent events: GET /events?topic=PATTERN&topic=... streams the
 * feed's messages whose routing key matches a topic, as
 *
 *     id: SEQ
 *     data: {"k": "builds/12/finished", "m": {...the build...}}
 *
 * with ": keepalive" every WWW_SSE_KEEPALIVE_MS.  A stream is a libmicrohttpd
 * answer of unknown length whose reader copies messages from the feed's ring;
 * with nothing to send it suspends its connection (no polling), and the
 * dispatcher resumes it when a message for it arrives or its keepalive is due.
 * `Last-Event-ID` (or ?last_event_id=) resumes after that message if the ring
 * still holds what follows it, else the stream starts with `event: resync`.  A
 * stream the ring passes while its client does not read gets `event: resync`
 * and ends: what it holds is one piece of text, whatever the client does.
 */
#include "www/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Text a stream copies out of the ring at once (about). */
#define PIECE (16 * 1024)

struct www_sse {
    struct www_feed *f;
    struct MHD_Connection *conn;
    uint64_t cursor;
    char *topics[WWW_TOPICS_MAX];
    size_t n_topics;
    struct buf out; /* text to send, from `sent` on */
    size_t sent;
    bool suspended, ending, resync;
    uint64_t last_ms; /* when it last sent something */
    struct www_sse *prev, *next;
};

static void put_cb(void *arg, uint64_t seq, const char *key, const char *entity, size_t len)
{
    struct www_sse *s = arg;
    buf_printf(&s->out, "id: %llu\ndata: {\"k\": \"", (unsigned long long)seq);
    www_json_escape(&s->out, key, strlen(key));
    buf_addstr(&s->out, "\", \"m\": ");
    buf_add(&s->out, entity, len);
    buf_addstr(&s->out, "}\n\n");
}

/* Under the lock: the next text of the stream into s->out (may stay empty). */
static void fill(struct www_sse *s, uint64_t now)
{
    buf_reset(&s->out);
    s->sent = 0;
    if (s->ending || s->f->stopping)
        return;
    if (s->resync) {
        buf_addstr(&s->out, "event: resync\ndata: {}\n\n");
        s->resync = false;
    }
    if (!www_feed_take(s->f, &s->cursor, s->topics, s->n_topics, put_cb, s, PIECE)) {
        buf_addstr(&s->out, "event: resync\ndata: {}\n\n");
        s->ending = true; /* it could not keep up: it goes */
        return;
    }
    if (s->out.len == 0 && now - s->last_ms >= s->f->keepalive_ms)
        buf_addstr(&s->out, ": keepalive\n\n");
}

static ssize_t read_cb(void *cls, uint64_t pos, char *to, size_t max)
{
    (void)pos;
    struct www_sse *s = cls;
    struct www_feed *f = s->f;
    uint64_t now = util_mono_ms();
    pthread_mutex_lock(&f->lock);
    if (s->sent == s->out.len)
        fill(s, now);
    if (s->sent == s->out.len) {
        bool end = s->ending || f->stopping;
        if (!end) {
            s->suspended = true;
            MHD_suspend_connection(s->conn);
        }
        pthread_mutex_unlock(&f->lock);
        return end ? MHD_CONTENT_READER_END_OF_STREAM : 0;
    }
    size_t n = s->out.len - s->sent < max ? s->out.len - s->sent : max;
    memcpy(to, s->out.data + s->sent, n);
    s->sent += n;
    s->last_ms = now;
    pthread_mutex_unlock(&f->lock);
    return (ssize_t)n;
}

static void sse_free(struct www_sse *s)
{
    for (size_t i = 0; i < s->n_topics; i++)
        free(s->topics[i]);
    buf_free(&s->out);
    free(s);
}

static void free_cb(void *cls)
{
    struct www_sse *s = cls;
    struct www_feed *f = s->f;
    pthread_mutex_lock(&f->lock);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        f->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    f->n_streams--;
    pthread_mutex_unlock(&f->lock);
    sse_free(s);
}

void www_sse_wake(struct www_feed *f, uint64_t now_ms)
{
    for (struct www_sse *s = f->streams; s != NULL; s = s->next) {
        if (!s->suspended)
            continue;
        if (f->stopping || s->resync || now_ms - s->last_ms >= f->keepalive_ms ||
            www_feed_pending(f, &s->cursor, s->topics, s->n_topics)) {
            s->suspended = false;
            MHD_resume_connection(s->conn);
        }
    }
}

/* The request's topics and resume point. */
struct args {
    struct www_sse *s;
    const char *last_id;
    const char *error;
};

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    struct args *a = cls;
    if (value == NULL || a->error != NULL)
        return MHD_YES;
    if (strcmp(key, "last_event_id") == 0) {
        a->last_id = value;
    } else if (strcmp(key, "topic") == 0) {
        if (!www_topic_ok(value))
            a->error = "a topic is empty or longer than 256 bytes";
        else if (a->s->n_topics == WWW_TOPICS_MAX)
            a->error = "too many topics (at most 64)";
        else
            a->s->topics[a->s->n_topics++] = xstrdup(value);
    }
    return MHD_YES;
}

/* Under the lock: where a new stream starts. */
static void start_at(struct www_sse *s, const char *last_id)
{
    struct www_feed *f = s->f;
    long long id;
    s->cursor = f->head;
    if (last_id == NULL)
        return;
    if (www_parse_int(last_id, &id) && id >= 0 && (uint64_t)id + 1 >= f->tail &&
        (uint64_t)id < f->head)
        s->cursor = (uint64_t)id + 1;
    else
        s->resync = true; /* what followed is gone (or the id is another master's) */
}

static enum MHD_Result refuse(struct MHD_Connection *c, struct www_sse *s, int status,
                              const char *msg)
{
    sse_free(s);
    return www_send_error(c, status, msg);
}

enum MHD_Result www_sse_open(struct www *w, struct MHD_Connection *c)
{
    struct www_feed *f = w->feed;
    if (f == NULL)
        return www_send_error(c, 404, "events are not served by this master");
    struct www_sse *s = xcalloc(1, sizeof *s);
    s->f = f;
    s->conn = c;
    buf_init(&s->out, 0);
    struct args a = {.s = s};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_cb, &a);
    const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (a.error != NULL)
        return refuse(c, s, 400, a.error);
    if (s->n_topics == 0)
        return refuse(c, s, 400, "at least one topic is needed: /events?topic=builds/*/*");
    pthread_mutex_lock(&f->lock);
    bool full = f->n_streams >= WWW_SSE_MAX || f->stopping;
    if (!full) {
        start_at(s, hdr != NULL ? hdr : a.last_id);
        s->last_ms = util_mono_ms();
        s->next = f->streams;
        if (f->streams != NULL)
            f->streams->prev = s;
        f->streams = s;
        f->n_streams++;
    }
    pthread_mutex_unlock(&f->lock);
    if (full)
        return refuse(c, s, 503, "too many event streams; try again later");
    /* what the kernel holds for a client that does not read is bounded too */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int sndbuf = WWW_SSE_SNDBUF;
    if (ci != NULL)
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, PIECE, read_cb, s, free_cb);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
