/*
 * Collections, whatever their size.  A GET on a collection first reads at
 * most `page` + 1 rows (a probe, www_window): when that is every row there
 * is, the answer is built in memory as Buildbot builds it (filters, Python's
 * sort, the slice, meta.total) and the cache may keep it.  Otherwise it is
 * streamed: the rows are read `batch` at a time in a total order (the keyset
 * windows of query.c), each batch's items filtered, sliced and written out
 * in Buildbot's JSON, and meta.total written after the list, since "meta"
 * sorts after the list's name; for the few names that sort before it
 * ("schedulers", "steps", "workers"...) a first pass counts the items.  Memory
 * then holds one batch whatever the collection's size.
 *
 * The two paths write the same bytes.  A streamed answer is not a snapshot:
 * rows written while it is read appear if their key is still ahead of the
 * batches.  An order the database cannot give (a list or object field) is
 * done in memory, on at most `page` rows: past that it is refused with a 400.
 * An order the database gives by sorting (no index has it) costs a sort of all
 * the rows per batch: such an answer is read `page` rows at a time, and holds
 * at most `sort_max` rows (WWW_SORT_ROWS_MAX); past that it is refused with a
 * 400 before anything is sent.
 *
 * On a request thread each read has an allowance (www_pool_get_quick): a probe
 * that runs past it is made again, and the answer sent, from a job on the
 * threads for slow reads; a batch that runs past it leaves the listing as it
 * was before the batch and returns WWW_SLOW, and stream.c makes it again there.
 */
#include "www/internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum phase { L_HEAD, L_ITEMS, L_TAIL, L_DONE };

struct listing {
    struct www *w;
    struct www_req req; /* its query, and arguments pointing into `segs` */
    char *path, *segs_text;
    char *segs[WWW_PATH_MAX_SEGS + 1];
    bool sql_paged;  /* the database filters and pages: write every row it gives */
    long long batch; /* rows read at a time */
    bool meta_first; /* the plural sorts after "meta": the total goes first */
    enum phase phase;
    long long start, end; /* otherwise: the slice of matching items to write */
    long long left;       /* SQL paging: rows the query's limit still allows, -1: any */
    long long matched, written, total;
    bool counted, rows_done;
};

/* One batch: the endpoint reads it, its items are filtered, sliced and (if out) written. */
static void put_items(struct listing *l, json_t *items, struct buf *out)
{
    struct www_req *req = &l->req;
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o)
    {
        if (!l->sql_paged && !www_query_match(&req->q, o))
            continue;
        long long k = l->matched++;
        if (out == NULL || (!l->sql_paged && (k < l->start || k >= l->end)))
            continue;
        www_query_select(&req->q, o);
        www_json_next(out, req->style, 2, '[', l->written == 0);
        www_json_put(out, o, req->style, 2);
        l->written++;
    }
    if (out != NULL && l->counted && !l->sql_paged && l->matched >= l->end)
        l->rows_done = true; /* the total is known: nothing after the slice matters */
}

static int read_batch(struct listing *l, struct buf *out, char **cause)
{
    struct www_req *req = &l->req;
    long long rows = l->batch;
    if (l->left >= 0 && l->left < rows)
        rows = l->left;
    if (rows == 0) {
        l->rows_done = true;
        return 0;
    }
    req->win.mode = WWW_WIN_BATCH;
    req->win.rows = rows;
    req->win.got = 0;
    req->db = www_pool_get_quick(l->w, cause);
    if (req->db == NULL)
        return -1;
    struct www_window before = {0};
    www_window_copy_key(&before, &req->win);
    json_t *items = json_array();
    bool paged = false;
    int rc = req->ep->get(req, items, &paged, cause);
    if (rc < 0 && db_overran(req->db)) { /* as before the batch, to be read again */
        www_window_copy_key(&req->win, &before);
        rc = WWW_SLOW;
    }
    www_window_clear_key(&before);
    www_pool_put(l->w, req->db);
    req->db = NULL;
    if (rc == 0) {
        req->win.skip = 0; /* the query's offset applies before the first batch only */
        l->rows_done = req->win.got < rows;
        if (l->left >= 0)
            l->left -= req->win.got;
        put_items(l, items, out);
    }
    json_decref(items);
    return rc;
}

/* Back to the first row. */
static void rewind_rows(struct listing *l)
{
    const struct www_query *q = &l->req.q;
    www_window_clear_key(&l->req.win);
    l->req.win.python_order = !l->sql_paged;
    l->req.win.skip = l->sql_paged && q->has_offset && q->offset > 0 ? q->offset : 0;
    l->left = l->sql_paged && q->has_limit && q->limit >= 0 ? q->limit : -1;
    l->matched = 0;
    l->rows_done = false;
}

/* A first pass that only counts: the total written before the list, or the n that a slice
   counting from the end needs. */
static int count_items(struct listing *l, char **cause)
{
    rewind_rows(l);
    while (!l->rows_done) {
        int rc = read_batch(l, NULL, cause);
        if (rc < 0)
            return rc;
    }
    l->total = l->matched;
    l->counted = true;
    rewind_rows(l);
    if (l->sql_paged && (l->left < 0 || l->left > l->total))
        l->left = l->total; /* rows added since the count stay out: the list matches it */
    return 0;
}

static void put_meta(struct listing *l, struct buf *out, long long total)
{
    json_t *meta = json_pack("{sI}", "total", (json_int_t)total);
    www_json_key(out, l->req.style, "meta");
    www_json_put(out, meta, l->req.style, 1);
    json_decref(meta);
}

static int put_head(struct listing *l, struct buf *out, char **cause)
{
    const struct www_query *q = &l->req.q;
    bool from_end = !l->sql_paged && www_query_slice_needs_n(q);
    int rc = l->meta_first || from_end ? count_items(l, cause) : 0;
    if (rc < 0)
        return rc;
    if (!l->counted)
        rewind_rows(l);
    if (!l->sql_paged)
        www_query_slice(q, l->counted ? l->total : LLONG_MAX, &l->start, &l->end);
    www_json_next(out, l->req.style, 1, '{', true);
    if (l->meta_first) {
        put_meta(l, out, l->total);
        www_json_next(out, l->req.style, 1, '{', false);
    }
    www_json_key(out, l->req.style, l->req.ep->type->plural);
    return 0;
}

static void put_tail(struct listing *l, struct buf *out)
{
    www_json_end(out, l->req.style, 1, '[', ']', l->written == 0);
    if (!l->meta_first) {
        www_json_next(out, l->req.style, 1, '{', false);
        put_meta(l, out, l->sql_paged ? l->written : l->matched);
    }
    www_json_end(out, l->req.style, 0, '{', '}', false);
}

static int list_fill(void *state, struct buf *out, char **cause)
{
    struct listing *l = state;
    int rc;
    switch (l->phase) {
    case L_HEAD:
        if ((rc = put_head(l, out, cause)) < 0)
            return rc;
        l->phase = L_ITEMS;
        return 1;
    case L_ITEMS:
        if ((rc = read_batch(l, out, cause)) < 0)
            return rc;
        if (l->rows_done)
            l->phase = L_TAIL;
        return 1;
    case L_TAIL:
        put_tail(l, out);
        l->phase = L_DONE;
        return 0;
    case L_DONE:
        break;
    }
    return 0;
}

static void list_free(void *state)
{
    struct listing *l = state;
    www_window_clear_key(&l->req.win);
    www_query_free(&l->req.q);
    free(l->path);
    free(l->segs_text);
    free(l);
}

/* Can the database give the query's order (scalar fields with a column)? */
static const struct www_field *unsortable(const struct www_query *q)
{
    for (size_t i = 0; i < q->n_orders; i++) {
        const struct www_field *f = q->orders[i].field;
        if (f->sql == NULL || f->type == WWW_F_INTS || f->type == WWW_F_STRS ||
            f->type == WWW_F_OBJECT)
            return f;
    }
    return NULL;
}

/* A listing that takes the request's query over; the arguments are matched again on a
   copy of the path. */
static struct listing *adopt(struct www *w, struct www_req *req)
{
    struct listing *l = xcalloc(1, sizeof *l);
    l->w = w;
    l->req = *req;
    memset(&req->q, 0, sizeof req->q);
    l->path = xstrdup(req->path);
    l->segs_text = xstrdup(req->path);
    size_t nsegs = www_split_path(l->segs_text, l->segs, WWW_PATH_MAX_SEGS);
    l->req.path = l->path;
    l->req.db = NULL;
    l->req.raw = NULL;
    l->req.win = (struct www_window){.mode = WWW_WIN_BATCH};
    www_route(l->segs, nsegs, &l->req.args);
    return l;
}

/* `slow`: its probe was too slow for a request thread, and each batch is a sort as long. */
static enum MHD_Result send_streamed(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                     bool paged, const char *key, bool slow)
{
    struct listing *l = adopt(w, req);
    l->sql_paged = paged;
    l->batch = req->win.sorts ? (long long)w->page : (long long)w->batch;
    l->meta_first = strcmp(req->ep->type->plural, "meta") > 0;
    struct www_producer p = {list_fill, list_free, l};
    struct www_answer a = www_api_answer(w, req, key, db_writes(req->ep->tables));
    a.slow_reads = slow && req->win.sorts;
    return www_send_stream(c, &a, req->path, &p);
}

/* The answer as Buildbot builds it: every item in memory. */
static char *whole_text(struct www_req *req, json_t *out, bool paged, size_t *len)
{
    size_t total = paged ? json_array_size(out) : www_query_apply(&req->q, out, true);
    size_t i;
    json_t *o;
    json_array_foreach(out, i, o)
    {
        www_query_select(&req->q, o);
    }
    json_t *env =
        json_pack("{sOs{sI}}", req->ep->type->plural, out, "meta", "total", (json_int_t)total);
    char *text = www_json_dump(env, req->style, len);
    json_decref(env);
    return text;
}

/* The first read of a collection: at most `page` + 1 rows, and the sort check. */
struct probe {
    unsigned long writes; /* db_writes before it */
    json_t *out;
    bool paged, lost;
    bool moved; /* made on a thread for slow reads */
    int rc;     /* WWW_SLOW: it ran past the request thread's allowance */
    char *cause;
};

static void probe(struct www *w, struct www_req *req, struct probe *p)
{
    p->writes = db_writes(req->ep->tables);
    p->out = json_array();
    req->win = (struct www_window){
        .mode = WWW_WIN_PROBE, .rows = (long long)w->page + 1, .may_stream = true};
    req->db = www_pool_get_quick(w, &p->cause);
    p->rc = req->db == NULL ? -1 : req->ep->get(req, p->out, &p->paged, &p->cause);
    p->lost = req->db == NULL || db_lost(req->db);
    if (p->rc < 0 && req->db != NULL && db_overran(req->db))
        p->rc = WWW_SLOW;
    if (req->db != NULL)
        www_pool_put(w, req->db);
    req->db = NULL;
}

static void probe_free(struct probe *p)
{
    json_decref(p->out);
    free(p->cause);
    memset(p, 0, sizeof *p);
}

/* The answer, from its probe: whole, streamed, or refused. */
static enum MHD_Result answer_probed(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                     const char *key, struct probe *p)
{
    enum MHD_Result ret;
    const struct www_field *f = unsortable(&req->q);
    size_t len = 0;
    char *text = NULL;
    if (p->rc < 0) {
        ret = www_send_db_error(c, req->path, p->lost, p->cause);
    } else if (req->win.too_many_to_sort) {
        char *msg = xasprintf("cannot order more than %lld items by '%s': the database has no "
                              "index for that order; filter them or give a limit",
                              w->sort_max, req->q.orders[0].field->name);
        ret = www_send_error(c, 400, msg);
        free(msg);
    } else if (req->win.got <= (long long)w->page) {
        /* all there is: as Buildbot builds it, unless the text is long (then streamed) */
        text = whole_text(req, p->out, p->paged, &len);
        if (len <= w->answer_max || f != NULL) {
            struct www_answer a = www_api_answer(w, req, key, p->writes);
            ret = www_send_text(c, &a, text, len);
            text = NULL;
        } else {
            ret = send_streamed(w, c, req, p->paged, key, p->moved);
        }
    } else if (f != NULL) {
        char *msg = xasprintf("cannot order more than %zu items by '%s'", w->page, f->name);
        ret = www_send_error(c, 400, msg);
        free(msg);
    } else {
        ret = send_streamed(w, c, req, p->paged, key, p->moved);
    }
    free(text);
    return ret;
}

/* A collection whose probe was slow on a request thread: probed again on a thread for slow
   reads (jobs.c), then answered on the request thread. */
struct slow_list {
    struct www_job job; /* first: the pool's view of it */
    struct listing *l;  /* the request */
    char *key;
    struct probe p;
};

static void slow_list_run(struct www_job *job)
{
    struct slow_list *sl = (struct slow_list *)job;
    probe(sl->l->w, &sl->l->req, &sl->p);
    sl->p.moved = true;
}

static void slow_list_free(struct www_job *job)
{
    struct slow_list *sl = (struct slow_list *)job;
    probe_free(&sl->p);
    list_free(sl->l);
    free(sl->key);
    free(sl);
}

static enum MHD_Result slow_list_answer(struct www_job *job, struct MHD_Connection *c)
{
    struct slow_list *sl = (struct slow_list *)job;
    enum MHD_Result ret;
    if (job->cancelled)
        ret = www_send_busy(c, "the master is stopping; try again later");
    else
        ret = answer_probed(sl->l->w, c, &sl->l->req, sl->key, &sl->p);
    slow_list_free(job);
    return ret;
}

static enum MHD_Result hand_over(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                 const char *key, struct www_job **slot)
{
    struct slow_list *sl = xcalloc(1, sizeof *sl);
    sl->job =
        (struct www_job){.run = slow_list_run, .answer = slow_list_answer, .free = slow_list_free};
    sl->l = adopt(w, req);
    sl->key = key != NULL ? xstrdup(key) : NULL;
    return www_slow_submit(w, &sl->job, c, slot);
}

enum MHD_Result www_list_answer(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                const char *key, struct www_job **slot)
{
    struct probe p = {0};
    probe(w, req, &p);
    enum MHD_Result ret =
        p.rc == WWW_SLOW ? hand_over(w, c, req, key, slot) : answer_probed(w, c, req, key, &p);
    probe_free(&p);
    return ret;
}
