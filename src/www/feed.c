/*
 * The feed of live events.  The engine only says what it wrote ("builds", 12,
 * "finished") on the event bus; a dispatcher thread of the web server turns that
 * into Buildbot's messages: it reads the entity once, through the endpoint that
 * answers GET /api/v2/builds/12 (so a message is exactly what the API shows at
 * that moment), makes the routing keys from the entity's fields as Buildbot's
 * produceEvent does, and appends the message to a ring bounded by count and
 * bytes.  SSE streams and WebSocket clients read the ring with cursors of their
 * own: memory does not grow with the number of clients or their slowness, and
 * nothing here waits for a client.  A client the ring has passed is told to
 * resync and dropped.
 *
 * Log appends come every flush of a running log (a few per second, more for a
 * fast one); one log's are coalesced to one per WWW_FEED_APPEND_MS, its entity
 * read when it goes out (num_lines then counts every line so far).
 */
#include "www/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64
#define WAIT_MS 1000

struct append {
    long long logid;
    uint64_t sent_ms; /* when one last went out */
    bool waiting;     /* one came since */
};

struct dispatcher {
    struct www_feed *f;
    uint64_t cursor;
    struct append appends[WWW_FEED_APPEND_LOGS];
    size_t n_appends;
    struct db *db;    /* borrowed from the pool for one batch */
    json_t *builders; /* the builders the batch's update events name, read at once */
};

/* ------------------------------------------------------------ topics */

bool www_topic_ok(const char *topic)
{
    size_t n = strlen(topic);
    return n > 0 && n <= WWW_TOPIC_MAX;
}

bool www_topic_match(const char *topic, const char *key)
{
    const char *t = topic, *k = key;
    for (;;) {
        size_t tn = strcspn(t, "/"), kn = strcspn(k, "/");
        if (!(tn == 1 && t[0] == '*') && (tn != kn || memcmp(t, k, tn) != 0))
            return false;
        t += tn;
        k += kn;
        if (*t == '\0' || *k == '\0')
            return *t == '\0' && *k == '\0';
        t++;
        k++;
    }
}

static bool matches(const char *key, char *const *topics, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (www_topic_match(topics[i], key))
            return true;
    return false;
}

/* ------------------------------------------------------------ the ring */

static void msg_clear(struct www_feed_msg *m)
{
    for (unsigned i = 0; i < m->n_keys; i++)
        free(m->keys[i]);
    free(m->entity);
    memset(m, 0, sizeof *m);
}

/* Under the lock: the oldest message goes. */
static void drop_oldest(struct www_feed *f)
{
    struct www_feed_msg *m = &f->ring[f->tail % WWW_FEED_MSGS];
    f->bytes -= m->len;
    msg_clear(m);
    f->tail++;
}

static void append_msg(struct www_feed *f, char **keys, unsigned n_keys, char *entity, size_t len)
{
    pthread_mutex_lock(&f->lock);
    while (f->head > f->tail &&
           (f->head - f->tail >= f->max_msgs || f->bytes + len > WWW_FEED_BYTES))
        drop_oldest(f);
    struct www_feed_msg *m = &f->ring[f->head % WWW_FEED_MSGS];
    m->seq = f->head++;
    m->n_keys = n_keys;
    memcpy(m->keys, keys, n_keys * sizeof *keys);
    m->entity = entity;
    m->len = len;
    f->bytes += len;
    pthread_mutex_unlock(&f->lock);
}

bool www_feed_take(struct www_feed *f, uint64_t *cursor, char *const *topics, size_t n_topics,
                   www_feed_put_cb put, void *arg, size_t budget)
{
    if (*cursor < f->tail)
        return false;
    size_t spent = 0;
    for (; *cursor < f->head && spent < budget; ++*cursor) {
        const struct www_feed_msg *m = &f->ring[*cursor % WWW_FEED_MSGS];
        for (unsigned k = 0; k < m->n_keys; k++) {
            if (!matches(m->keys[k], topics, n_topics))
                continue;
            put(arg, m->seq, m->keys[k], m->entity, m->len);
            spent += m->len + strlen(m->keys[k]);
        }
    }
    return true;
}

bool www_feed_pending(struct www_feed *f, uint64_t *cursor, char *const *topics, size_t n_topics)
{
    if (*cursor < f->tail)
        return true;
    for (; *cursor < f->head; ++*cursor) {
        const struct www_feed_msg *m = &f->ring[*cursor % WWW_FEED_MSGS];
        for (unsigned k = 0; k < m->n_keys; k++)
            if (matches(m->keys[k], topics, n_topics))
                return true;
    }
    return false;
}

/* ------------------------------------------------------------ messages */

/* A routing key from a pattern ("builders/:builderid/builds/:number") and the entity's
   fields, as Python's str.format writes them; false if a field is missing or too long. */
static bool make_key(const char *pattern, const json_t *entity, const char *event, char *out,
                     size_t size)
{
    struct buf b;
    buf_init(&b, size - 1);
    bool ok = true;
    for (const char *p = pattern; ok && *p != '\0';) {
        size_t n = strcspn(p, "/");
        if (*p == ':') {
            char field[64];
            snprintf(field, sizeof field, "%.*s", (int)(n - 1), p + 1);
            const json_t *v = json_object_get(entity, field);
            if (json_is_integer(v))
                ok = buf_printf(&b, "%lld", (long long)json_integer_value(v)) == 0;
            else if (json_is_string(v))
                ok = buf_addstr(&b, json_string_value(v)) == 0;
            else if (json_is_null(v))
                ok = buf_addstr(&b, "None") == 0;
            else
                ok = false;
        } else {
            ok = buf_add(&b, p, n) == 0;
        }
        p += n;
        if (*p == '/')
            p++;
        ok = ok && buf_addc(&b, '/') == 0;
    }
    ok = ok && buf_addstr(&b, event) == 0;
    if (ok)
        snprintf(out, size, "%s", b.data != NULL ? b.data : "");
    buf_free(&b);
    return ok;
}

/* The builder among those read for the batch, or NULL. */
static json_t *batch_builder(const struct dispatcher *d, long long id)
{
    size_t i;
    json_t *b;
    json_array_foreach(d->builders, i, b)
    {
        json_t *v = json_object_get(b, "builderid");
        if (json_is_integer(v) && json_integer_value(v) == id)
            return json_incref(b);
    }
    return NULL;
}

/*
 * A reconfig sends an update event for every builder (as Buildbot does): the builders a
 * batch names are read with one query for their rows and one each for their masters and
 * tags, not three per builder.  Only when their ids are close together (as a reconfig's
 * are), so that the range read holds little else.
 */
static void read_builders(struct dispatcher *d, const struct ev_item *items, size_t n)
{
    long long lo = 0, hi = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].type != EV_BUILDER)
            continue;
        lo = count == 0 || items[i].id < lo ? items[i].id : lo;
        hi = count == 0 || items[i].id > hi ? items[i].id : hi;
        count++;
    }
    if (count < 2 || hi - lo >= 2 * (long long)BATCH)
        return;
    char *cause = NULL;
    if (d->db == NULL)
        d->db = www_pool_get(d->f->w, &cause);
    if (d->db != NULL)
        d->builders = www_builders_between(d->f->w, d->db, lo, hi, &cause);
    free(cause); /* each is read alone then, and says why */
}

static void emit(struct dispatcher *d, enum ev_type type, long long id, enum ev_name name)
{
    char path[64], *cause = NULL;
    ev_path(type, id, path, sizeof path);
    json_t *entity = type == EV_BUILDER ? batch_builder(d, id) : NULL;
    if (entity == NULL && d->db == NULL)
        d->db = www_pool_get(d->f->w, &cause);
    if (entity == NULL && d->db != NULL)
        entity = www_get_entity(d->f->w, d->db, path, &cause);
    if (entity == NULL) {
        if (cause != NULL)
            log_warn("events: reading %s for its '%s' event: %s", path, ev_name_text(name), cause);
        free(cause);
        return;
    }
    size_t len;
    char *text = www_json_dump(entity, WWW_JSON_COMPACT, &len);
    char *keys[3];
    unsigned n_keys = 0;
    const char *const *patterns = ev_key_patterns(type);
    for (size_t i = 0; patterns[i] != NULL && n_keys < 3; i++) {
        char key[WWW_KEY_MAX];
        if (make_key(patterns[i], entity, ev_name_text(name), key, sizeof key))
            keys[n_keys++] = xstrdup(key);
    }
    json_decref(entity);
    if (len > WWW_FEED_ENTITY_MAX || n_keys == 0) {
        log_warn("events: %s '%s' not sent: %s", path, ev_name_text(name),
                 n_keys == 0 ? "no routing key" : "its entity is too long");
        while (n_keys > 0)
            free(keys[--n_keys]);
        free(text);
        return;
    }
    append_msg(d->f, keys, n_keys, text, len);
}

/* ------------------------------------------------------------ log appends */

static struct append *find_append(struct dispatcher *d, long long logid)
{
    for (size_t i = 0; i < d->n_appends; i++)
        if (d->appends[i].logid == logid)
            return &d->appends[i];
    return NULL;
}

static void forget_append(struct dispatcher *d, struct append *a)
{
    *a = d->appends[--d->n_appends];
}

/* An append: out now unless one went out for the log less than WWW_FEED_APPEND_MS ago. */
static void log_append(struct dispatcher *d, long long logid, uint64_t now)
{
    struct append *a = find_append(d, logid);
    if (a != NULL && now - a->sent_ms < WWW_FEED_APPEND_MS) {
        a->waiting = true;
        return;
    }
    if (a == NULL && d->n_appends == WWW_FEED_APPEND_LOGS) { /* the oldest makes room */
        size_t old = 0;
        for (size_t i = 1; i < d->n_appends; i++)
            if (d->appends[i].sent_ms < d->appends[old].sent_ms)
                old = i;
        if (d->appends[old].waiting)
            emit(d, EV_LOG, d->appends[old].logid, EV_APPEND);
        forget_append(d, &d->appends[old]);
    }
    if (a == NULL)
        a = &d->appends[d->n_appends++];
    *a = (struct append){.logid = logid, .sent_ms = now};
    emit(d, EV_LOG, logid, EV_APPEND);
}

/* The appends whose time has come; a log finished sends its last append first. */
static void due_appends(struct dispatcher *d, uint64_t now, long long finished)
{
    for (size_t i = 0; i < d->n_appends;) {
        struct append *a = &d->appends[i];
        bool due = now - a->sent_ms >= WWW_FEED_APPEND_MS || a->logid == finished;
        if (due && a->waiting) {
            emit(d, EV_LOG, a->logid, EV_APPEND);
            a->waiting = false;
            a->sent_ms = now;
        }
        if (a->logid == finished || (due && now - a->sent_ms >= 10 * WWW_FEED_APPEND_MS))
            forget_append(d, a);
        else
            i++;
    }
}

/* ------------------------------------------------------------ the thread */

static void handle(struct dispatcher *d, const struct ev_item *it, uint64_t now)
{
    if (it->type == EV_LOG && it->name == EV_APPEND) {
        log_append(d, it->id, now);
        return;
    }
    if (it->type == EV_LOG && it->name == EV_FINISHED)
        due_appends(d, now, it->id);
    emit(d, (enum ev_type)it->type, it->id, (enum ev_name)it->name);
}

/* Events the bus dropped before the dispatcher read them: every client resyncs. */
static void lost_events(struct www_feed *f, uint64_t lost)
{
    log_warn("events: %llu events were lost before they were read; clients resync",
             (unsigned long long)lost);
    pthread_mutex_lock(&f->lock);
    while (f->tail < f->head)
        drop_oldest(f);
    f->head++;
    f->tail = f->head;
    pthread_mutex_unlock(&f->lock);
}

static void *dispatch_main(void *arg)
{
    struct www_feed *f = arg;
    struct dispatcher *d = xcalloc(1, sizeof *d);
    d->f = f;
    d->cursor = ev_head(f->bus);
    for (;;) {
        pthread_mutex_lock(&f->lock);
        bool stop = f->stopping;
        pthread_mutex_unlock(&f->lock);
        if (stop)
            break;
        ev_wait(f->bus, d->cursor, d->n_appends > 0 ? WWW_FEED_APPEND_MS / 2 : WAIT_MS);
        struct ev_item items[BATCH];
        uint64_t lost = 0;
        size_t n = ev_read(f->bus, &d->cursor, items, BATCH, &lost);
        if (lost > 0)
            lost_events(f, lost);
        uint64_t now = util_mono_ms();
        read_builders(d, items, n);
        for (size_t i = 0; i < n; i++)
            handle(d, &items[i], now);
        due_appends(d, now, -1);
        json_decref(d->builders);
        d->builders = NULL;
        if (d->db != NULL)
            www_pool_put(f->w, d->db);
        d->db = NULL;
        pthread_mutex_lock(&f->lock);
        www_sse_wake(f, now);
        pthread_mutex_unlock(&f->lock);
        if (f->ws != NULL)
            www_ws_wake(f->ws);
    }
    free(d);
    return NULL;
}

/* A bound the environment may lower, for tests (the default is the maximum). */
static long env_long(const char *name, long min, long max)
{
    const char *s = getenv(name);
    long v;
    return s != NULL && util_parse_long(s, min, max, &v) == 0 ? v : max;
}

struct www_feed *www_feed_start(struct www *w, struct ev_bus *bus, char **cause)
{
    if (bus == NULL)
        return NULL;
    struct www_feed *f = xcalloc(1, sizeof *f);
    f->w = w;
    f->bus = bus;
    f->head = f->tail = 1;
    pthread_mutex_init(&f->lock, NULL);
    f->keepalive_ms = (unsigned)env_long("BBM_SSE_KEEPALIVE_MS", 100, WWW_SSE_KEEPALIVE_MS);
    f->max_msgs = (size_t)env_long("BBM_WWW_FEED_MSGS", 8, WWW_FEED_MSGS);
    f->ws = www_ws_start(f, cause);
    if (f->ws == NULL) {
        www_feed_free(f);
        return NULL;
    }
    int err = pthread_create(&f->thread, NULL, dispatch_main, f);
    if (err != 0) {
        util_cause(cause, "www: cannot start the events thread: %s", strerror(err));
        www_feed_free(f);
        return NULL;
    }
    f->running = true;
    return f;
}

void www_feed_stop(struct www_feed *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    www_sse_wake(f, util_mono_ms());
    pthread_mutex_unlock(&f->lock);
    www_ws_stop(f->ws);
    if (f->running) {
        ev_wake(f->bus);
        pthread_join(f->thread, NULL);
        f->running = false;
    }
}

void www_feed_free(struct www_feed *f)
{
    if (f == NULL)
        return;
    www_feed_stop(f);
    www_ws_free(f->ws);
    while (f->tail < f->head)
        drop_oldest(f);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
