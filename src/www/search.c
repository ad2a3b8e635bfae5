/*
 * Searching a log on the master: GET /logs/N/search?q=TEXT (also under /all),
 * outside /api/v2 since Buildbot has no such endpoint.  The log is read in line
 * order from line `from`, a few chunks at a time (www_log_chunks), never whole,
 * and each line's text -- without the stdio channel character Buildbot stores
 * first -- is matched: a substring (case=0, the default, folds ASCII letters),
 * or with re=1 a PCRE2 pattern (case=0 folds every letter; a line is one
 * subject, so ^ and $ are its ends).  A substring is looked for across the rest
 * of a chunk at once (memmem), so lines without it cost a newline search.
 *
 * Bounded: at most `limit` matches (100, up to 1000), each line's text cut at
 * WWW_SEARCH_SNIPPET bytes on a UTF-8 boundary, and WWW_SEARCH_MS of scanning
 * (checked after each chunk, so each request gets on by one chunk at least);
 * the answer's `next` is the line to ask from to go on, and `complete` says
 * whether the end of the log was reached.  A search still scanning after the
 * request thread's allowance (w->quick_ms) goes on, from the line it reached,
 * on one of the threads for slow reads, and is answered from there.
 */
#include "www/internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define QUERY_MAX 1024      /* bytes of q */
#define MATCH_LIMIT 1000000 /* PCRE2's backtracking bound, per line */
#define HEAP_LIMIT 20000    /* and its memory, KiB */

struct search {
    struct www *w;
    long long logid;
    bool stdio;             /* lines start with their channel character */
    const unsigned char *q; /* the substring (folded when icase) */
    size_t qlen;            /* or the pattern: */
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    bool icase;
    long long next, last; /* the first line not scanned yet; the last to scan */
    size_t limit, n;      /* matches asked for, found */
    struct buf out;       /* the matches, as JSON */
    struct buf fold;      /* a chunk with its ASCII letters folded */
    uint64_t deadline;    /* util_mono_ms */
    uint64_t pause;       /* on a request thread: when to hand the scan over (0: never) */
    bool stop;            /* limit reached, time is up, or paused */
    bool paused;
    char *cause; /* a line the pattern could not be run on */
};

bool www_search_path(const char *url, long long *logid)
{
    if (util_startswith(url, "/all/"))
        url += 4;
    if (!util_startswith(url, "/logs/"))
        return false;
    const char *p = url + 6;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 18 || strcmp(p + digits, "/search") != 0)
        return false;
    *logid = strtoll(p, NULL, 10);
    return true;
}

/* The longest start of text[0, len) that does not cut a UTF-8 sequence, at most max bytes. */
static size_t utf8_cut(const char *text, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void add_match(struct search *s, long long line, const char *p, const char *stop)
{
    buf_addstr(&s->out, s->n > 0 ? ",{\"line\":" : "{\"line\":");
    buf_printf(&s->out, "%lld,\"stream\":", line);
    size_t skip = s->stdio && stop > p ? 1 : 0;
    if (skip) {
        buf_addc(&s->out, '"');
        www_json_escape(&s->out, p, 1);
        buf_addc(&s->out, '"');
    } else {
        buf_addstr(&s->out, "null");
    }
    buf_addstr(&s->out, ",\"text\":\"");
    www_json_escape(&s->out, p + skip,
                    utf8_cut(p + skip, (size_t)(stop - p) - skip, WWW_SEARCH_SNIPPET));
    buf_addstr(&s->out, "\"}");
    s->n++;
}

/* Does the pattern match the line's text?  -1 when PCRE2 gave up on it (s->cause). */
static int re_match(struct search *s, long long line, const char *text, size_t len)
{
    int rc = pcre2_match(s->re, (PCRE2_SPTR)text, len, 0, 0, s->md, s->mctx);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    s->cause = xasprintf("re: line %lld: %s", line, (const char *)msg);
    return -1;
}

/* ASCII letters to lower case, in place (a loop the compiler turns into vector code). */
static void fold_ascii(char *text, size_t len)
{
    unsigned char *p = (unsigned char *)text;
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(p[i] + ((unsigned char)(p[i] - 'A') < 26 ? 32 : 0));
}

/* A substring's next place in hay[from, len), or len when there is none. */
static size_t find(const struct search *s, const char *hay, size_t from, size_t len)
{
    const char *h = memmem(hay + from, len - from, s->q, s->qlen);
    return h != NULL ? (size_t)(h - hay) : len;
}

static bool chunk_cb(const struct buf *chunk, long long first, long long chunk_last, void *arg)
{
    struct search *s = arg;
    const char *text = chunk->data != NULL ? chunk->data : "";
    size_t len = chunk->len;
    const char *hay = text;
    if (s->re == NULL && s->icase) {
        buf_reset(&s->fold);
        buf_add(&s->fold, text, len);
        fold_ascii(s->fold.data, len);
        hay = s->fold.data;
    }
    size_t hit = 0; /* the substring's next place at or after the line being read */
    bool hit_known = false;
    long long line = first;
    for (size_t at = 0; line <= chunk_last && line <= s->last; line++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        size_t skip = s->stdio && end > at ? 1 : 0;
        if (line >= s->next) {
            int m;
            if (s->re != NULL) {
                m = re_match(s, line, text + at + skip, end - at - skip);
            } else {
                if (!hit_known || hit < at + skip) {
                    hit = find(s, hay, at + skip, len);
                    hit_known = true;
                }
                if (hit == len) /* nothing more in this chunk */
                    break;
                m = hit < end;
            }
            if (m < 0) {
                s->stop = true;
                return false;
            }
            if (m > 0) {
                add_match(s, line, text + at, text + end);
                if (s->n == s->limit) {
                    s->next = line + 1;
                    s->stop = true;
                    return false;
                }
            }
        }
        if (nl == NULL)
            break;
        at = end + 1;
    }
    long long done = chunk_last < s->last ? chunk_last : s->last;
    if (s->next <= done)
        s->next = done + 1;
    uint64_t now = util_mono_ms();
    if (now >= s->deadline)
        s->stop = true;
    else if (s->pause != 0 && now >= s->pause)
        s->stop = s->paused = true;
    return !s->stop;
}

/* The query parameters; NULL, or the 400 text. */
static char *read_flag(struct MHD_Connection *c, const char *name, bool *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (v == NULL)
        return NULL;
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return xasprintf("%s: 0 or 1, not \"%s\"", name, v);
    *out = v[0] == '1';
    return NULL;
}

static char *read_number(struct MHD_Connection *c, const char *name, long long min, long long *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    long long n;
    if (v == NULL)
        return NULL;
    if (v[strspn(v, "0123456789")] != '\0' || !www_parse_int(v, &n) || n < min)
        return xasprintf("%s: a whole number of at least %lld, not \"%s\"", name, min, v);
    *out = n;
    return NULL;
}

static char *read_params(struct MHD_Connection *c, struct search *s, const char **q, bool *re)
{
    bool case_sensitive = false;
    long long from = 0, limit = LIMIT_DEFAULT;
    char *msg = read_flag(c, "re", re);
    msg = msg != NULL ? msg : read_flag(c, "case", &case_sensitive);
    msg = msg != NULL ? msg : read_number(c, "from", 0, &from);
    msg = msg != NULL ? msg : read_number(c, "limit", 1, &limit);
    if (msg != NULL)
        return msg;
    *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
    if (*q == NULL || **q == '\0')
        return xstrdup("q: the text to look for is missing");
    if (strlen(*q) > QUERY_MAX)
        return xasprintf("q: longer than %d bytes", QUERY_MAX);
    if (!*re && strchr(*q, '\n') != NULL)
        return xstrdup("q: a line holds no newline");
    s->icase = !case_sensitive;
    s->next = from;
    s->limit = limit > LIMIT_MAX ? LIMIT_MAX : (size_t)limit;
    return NULL;
}

/* The pattern or substring to look for; NULL, or the 400 text. */
static char *prepare(struct search *s, const char *q, bool re)
{
    if (!re) {
        char *folded = xstrdup(q);
        if (s->icase)
            fold_ascii(folded, strlen(folded));
        s->q = (const unsigned char *)folded;
        s->qlen = strlen(folded);
        return NULL;
    }
    int err;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (s->icase ? PCRE2_CASELESS : 0);
    s->re = pcre2_compile((PCRE2_SPTR)q, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
    if (s->re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return xasprintf("re: %s at offset %zu of \"%s\"", (const char *)msg, (size_t)off, q);
    }
    pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE); /* without JIT it works, slower */
    s->md = pcre2_match_data_create_from_pattern(s->re, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(s->mctx, MATCH_LIMIT);
    pcre2_set_heap_limit(s->mctx, HEAP_LIMIT);
    return NULL;
}

static void search_free(struct search *s)
{
    free((void *)s->q);
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_code_free(s->re);
    buf_free(&s->out);
    buf_free(&s->fold);
    free(s->cause);
}

/* The log's num_lines and whether it is a stdio log: 1, 0 when there is none, -1 (*cause). */
static int log_row(struct www *w, long long logid, long long *num_lines, bool *stdio, bool *lost,
                   char **cause)
{
    struct db *db = www_pool_get(w, cause);
    if (db == NULL) {
        *lost = true;
        return -1;
    }
    struct db_param p = DB_INT(logid);
    struct db_res *r = db_query(db, "SELECT num_lines, type FROM logs WHERE id = ?", &p, 1, cause);
    *lost = db_lost(db);
    www_pool_put(w, db);
    if (r == NULL)
        return -1;
    int found = db_res_rows(r) > 0;
    if (found) {
        *num_lines = db_res_int(r, 0, 0);
        *stdio = strcmp(db_res_text(r, 0, 1), "s") == 0;
    }
    db_res_free(r);
    return found;
}

/* Reads from s->next until the end, the limit or the deadline. */
static int scan(struct search *s, char **cause)
{
    int rc = 1;
    while (rc == 1 && !s->stop && s->next <= s->last)
        rc = www_log_chunks(s->w, s->logid, s->next, s->last, chunk_cb, s, cause);
    if (rc == 0 && s->next <= s->last) /* no chunk holds the lines left */
        s->next = s->last + 1;
    return rc < 0 ? -1 : 0;
}

static enum MHD_Result answer(struct MHD_Connection *c, struct search *s, long long num_lines)
{
    struct buf b;
    buf_init(&b, 0);
    bool complete = s->next > s->last;
    buf_printf(&b, "{\"logid\":%lld,\"matches\":[", s->logid);
    buf_add(&b, s->out.data != NULL ? s->out.data : "", s->out.len);
    if (complete)
        buf_addstr(&b, "],\"next\":null,\"complete\":true");
    else
        buf_printf(&b, "],\"next\":%lld,\"complete\":false", s->next);
    buf_printf(&b, ",\"num_lines\":%lld}", num_lines);
    struct www_answer a = {.type = "application/json; charset=utf-8",
                           .whole_max = s->w->answer_max,
                           .budget = &s->w->answers};
    size_t len = b.len;
    return www_send_text(c, &a, buf_take(&b), len);
}

/* A search, scanned on a request thread and maybe on a thread for slow reads. */
struct search_job {
    struct www_job job; /* first: the pool's view of it */
    struct search s;
    long long num_lines;
    int rc; /* of the scan */
    char *cause;
};

static void search_job_free(struct www_job *job)
{
    struct search_job *sj = (struct search_job *)job;
    search_free(&sj->s);
    free(sj->cause);
    free(sj);
}

/* Scans on, for what is left of the search's time. */
static void search_job_run(struct www_job *job)
{
    struct search_job *sj = (struct search_job *)job;
    uint64_t left = sj->s.deadline - sj->s.pause;
    sj->s.deadline = util_mono_ms() + left;
    sj->s.pause = 0;
    sj->s.stop = sj->s.paused = false;
    sj->rc = scan(&sj->s, &sj->cause);
}

static enum MHD_Result search_job_answer(struct www_job *job, struct MHD_Connection *c)
{
    struct search_job *sj = (struct search_job *)job;
    enum MHD_Result ret;
    if (job->cancelled)
        ret = www_send_busy(c, "the master is stopping; try again later");
    else if (sj->rc < 0)
        ret = www_send_db_error(c, "log search", false, sj->cause);
    else if (sj->s.cause != NULL)
        ret = www_send_error(c, 400, sj->s.cause);
    else
        ret = answer(c, &sj->s, sj->num_lines);
    search_job_free(job);
    return ret;
}

/* The first part of the scan, here; the rest, if any, handed over (left in *slot). */
static enum MHD_Result scan_and_answer(struct search_job *sj, struct MHD_Connection *c,
                                       struct www_job **slot)
{
    struct search *s = &sj->s;
    struct www *w = s->w;
    uint64_t now = util_mono_ms();
    if (w->quick_ms >= 0 && now + (uint64_t)w->quick_ms < s->deadline)
        s->pause = now + (uint64_t)w->quick_ms;
    sj->rc = scan(s, &sj->cause);
    if (sj->rc < 0 || !s->paused || s->next > s->last)
        return search_job_answer(&sj->job, c);
    return www_slow_submit(w, &sj->job, c, slot);
}

enum MHD_Result www_search(struct www *w, struct MHD_Connection *c, long long logid,
                           struct www_job **slot)
{
    struct search_job *sj = xcalloc(1, sizeof *sj);
    sj->job = (struct www_job){
        .run = search_job_run, .answer = search_job_answer, .free = search_job_free};
    struct search *s = &sj->s;
    *s = (struct search){.w = w, .logid = logid, .deadline = util_mono_ms() + w->search_ms};
    buf_init(&s->out, 0);
    buf_init(&s->fold, 0);
    const char *q = NULL;
    bool re = false, lost = false;
    char *cause = NULL;
    enum MHD_Result ret;
    char *msg = read_params(c, s, &q, &re);
    msg = msg != NULL ? msg : prepare(s, q, re);
    if (msg != NULL) {
        ret = www_send_error(c, 400, msg);
        goto fail;
    }
    int found = log_row(w, logid, &sj->num_lines, &s->stdio, &lost, &cause);
    if (found <= 0) {
        ret = found < 0 ? www_send_db_error(c, "log search", lost, cause)
                        : www_send_error(c, 404, "no such log");
        goto fail;
    }
    s->last = sj->num_lines - 1;
    return scan_and_answer(sj, c, slot);
fail:
    free(msg);
    free(cause);
    search_job_free(&sj->job);
    return ret;
}
