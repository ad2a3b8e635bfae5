/*
 * The git poller, as Buildbot's GitPoller: every pollInterval seconds (the
 * first time at once with pollAtLaunch) it runs the `git` program with
 * uv_spawn: `init --bare` of its workdir, `ls-remote` of the wanted refs
 * (the branches given, every branch with branches = true, tags with
 * only_tags, else the remote HEAD), `fetch` of them into refs/buildbot/...,
 * then per branch `rev-parse` and `log` of the commits since the revisions
 * it saw last.  Each new commit, oldest first, becomes a change (author,
 * committer, files, comments, timestamp) with src "git".  The revisions
 * seen are the poller's `lastRev` state (objects / object_state under its
 * name and the class GitPoller), so a restart neither loses nor repeats
 * changes; the first poll only records them.  git's output is bounded.
 */
#include "changes/internal.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define GIT_OUTPUT_MAX (16 * 1024 * 1024)

struct poller {
    struct chg *c; /* NULL once stopped */
    char *name;
    double interval; /* seconds */
    uv_timer_t timer;
    int handles; /* open libuv handles (the timer, a running git) */
    struct run *running;
    /* the poll in progress */
    bool polling;
    char *gitbin, *repourl, *workdir, *project, *category;
    bool usetimestamps, no_commits, only_tags;
    json_t *branches;  /* true, a list of names, or NULL (the remote HEAD) */
    json_t *refs;      /* to fetch */
    bool trim;         /* branch names are refs without refs/heads/ */
    size_t i;          /* the ref in hand */
    json_t *last;      /* lastRev as read */
    json_t *revs;      /* lastRev to write */
    json_t *revs_left; /* revisions of the ref in hand still to read */
    long long objectid;
    struct poller *next;
};

/* ------------------------------------------------------------ running git */

struct run {
    uv_process_t proc;
    uv_pipe_t out, err;
    struct buf output, errors;
    int64_t status;
    int open; /* handles not closed yet */
    struct poller *p;
    void (*done)(struct poller *p, bool ok, struct buf *out);
};

static void poller_maybe_free(struct poller *p);

static void run_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    if (--r->open > 0)
        return;
    struct poller *p = r->p;
    p->running = NULL;
    p->handles--;
    bool ok = r->status == 0;
    if (!ok && p->c != NULL)
        log_warn("gitpoller %s: git exited with %lld: %.*s", p->name, (long long)r->status,
                 (int)(r->errors.len < 400 ? r->errors.len : 400),
                 r->errors.data ? r->errors.data : "");
    if (p->c != NULL)
        r->done(p, ok, &r->output);
    buf_free(&r->output);
    buf_free(&r->errors);
    free(r);
    poller_maybe_free(p);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    static char chunk[64 * 1024];
    *b = uv_buf_init(chunk, sizeof chunk);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct run *r = s->data;
    struct buf *into = s == (uv_stream_t *)&r->out ? &r->output : &r->errors;
    if (n > 0 && buf_add(into, b->base, (size_t)n) < 0 && r->status == 0) {
        r->status = -1; /* too much output: the poll fails */
        uv_process_kill(&r->proc, SIGTERM);
    }
    if (n < 0)
        uv_close((uv_handle_t *)s, run_closed);
}

static void exit_cb(uv_process_t *proc, int64_t status, int sig)
{
    struct run *r = proc->data;
    if (r->status == 0)
        r->status = sig != 0 ? 128 + sig : status;
    uv_close((uv_handle_t *)proc, run_closed);
}

/* Runs git with `args` (NULL-terminated) in `cwd`; `done` follows with its output. */
static void git(struct poller *p, const char *cwd, const char *const *args,
                void (*done)(struct poller *p, bool ok, struct buf *out))
{
    struct run *r = xcalloc(1, sizeof *r);
    r->p = p;
    r->done = done;
    buf_init(&r->output, GIT_OUTPUT_MAX);
    buf_init(&r->errors, 64 * 1024);
    uv_pipe_init(p->c->loop, &r->out, 0);
    uv_pipe_init(p->c->loop, &r->err, 0);
    r->out.data = r->err.data = r->proc.data = r;
    const char *argv[64];
    size_t n = 0;
    argv[n++] = p->gitbin;
    argv[n++] = "-c";
    argv[n++] = "core.quotePath=false";
    for (size_t i = 0; args[i] != NULL && n < UTIL_NELEM(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->err}};
    uv_process_options_t o = {.exit_cb = exit_cb,
                              .file = p->gitbin,
                              .args = (char **)argv,
                              .cwd = cwd,
                              .stdio_count = 3,
                              .stdio = stdio};
    p->handles++;
    p->running = r;
    int rc = uv_spawn(p->c->loop, &r->proc, &o);
    if (rc != 0) {
        log_warn("gitpoller %s: cannot run %s: %s", p->name, p->gitbin, uv_strerror(rc));
        r->status = -1;
        r->open = 3;
        uv_close((uv_handle_t *)&r->out, run_closed);
        uv_close((uv_handle_t *)&r->err, run_closed);
        uv_close((uv_handle_t *)&r->proc, run_closed);
        return;
    }
    r->open = 3;
    uv_read_start((uv_stream_t *)&r->out, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&r->err, alloc_cb, read_cb);
}

/* The output with Python's str.strip() applied (malloc'd). */
static char *stripped(const char *s, size_t len)
{
    while (len > 0 && strchr(" \t\r\n", *s) != NULL)
        s++, len--;
    while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
        len--;
    return xstrndup(s, len);
}

/* ------------------------------------------------------------ one poll */

static void poll_done(struct poller *p)
{
    p->polling = false;
    json_decref(p->refs);
    json_decref(p->last);
    json_decref(p->revs);
    json_decref(p->revs_left);
    json_decref(p->branches);
    p->refs = p->last = p->revs = p->revs_left = p->branches = NULL;
    free(p->gitbin);
    free(p->repourl);
    free(p->workdir);
    free(p->project);
    free(p->category);
    p->gitbin = p->repourl = p->workdir = p->project = p->category = NULL;
}

/* refs/buildbot/<url>/<ref>: where a fetched ref is kept in the workdir. */
static char *tracker(const struct poller *p, const char *ref)
{
    struct buf b;
    buf_init(&b, 8192);
    buf_addstr(&b, util_startswith(ref, "refs/") ? "refs/buildbot/" : "refs/buildbot/raw/");
    for (const unsigned char *u = (const unsigned char *)p->repourl; *u != '\0'; u++) {
        if ((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') || (*u >= '0' && *u <= '9') ||
            strchr("-._", *u) != NULL)
            buf_addc(&b, (char)*u);
        else
            buf_printf(&b, "%%%02X", *u);
    }
    buf_printf(&b, "/%s", util_startswith(ref, "refs/") ? ref + 5 : ref);
    return buf_take(&b);
}

static const char *branch_of(const struct poller *p, const char *ref)
{
    return p->trim && util_startswith(ref, "refs/heads/") ? ref + 11 : ref;
}

static void next_ref(struct poller *p);

static void save_and_finish(struct poller *p)
{
    char *text = json_dumps(p->revs, JSON_COMPACT | JSON_SORT_KEYS), *cause = NULL;
    if (db_state_set(p->c->db, p->objectid, "lastRev", text, &cause) < 0) {
        log_error("gitpoller %s: %s", p->name, cause);
        free(cause);
    }
    free(text);
    poll_done(p);
}

/* One commit's details: %ct, author, committer, message, then the files. */
static void got_commit(struct poller *p, bool ok, struct buf *out)
{
    const char *ref = json_string_value(json_array_get(p->refs, p->i));
    const char *rev = json_string_value(json_array_get(p->revs_left, 0));
    const char *f[4] = {0};
    size_t flen[4] = {0};
    const char *s = out->data ? out->data : "", *end = s + out->len;
    for (int k = 0; k < 4 && ok; k++) {
        const char *z = memchr(s, '\0', (size_t)(end - s));
        if (z == NULL) {
            ok = false;
            break;
        }
        f[k] = s;
        flen[k] = (size_t)(z - s);
        s = z + 1;
    }
    if (!ok) { /* lastRev stays: the next poll tries again */
        log_warn("gitpoller %s: cannot read commit %s", p->name, rev);
        poll_done(p);
        return;
    }
    json_t *files = json_array();
    char *rest = xstrndup(s, (size_t)(end - s)), *save = NULL;
    for (char *line = strtok_r(rest, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (*line != '\0' && json_array_size(files) < CHG_MAX_FILES) {
            json_t *v = json_string(line);
            json_array_append_new(files, v != NULL ? v : json_string("?"));
        }
    free(rest);
    char *when = stripped(f[0], flen[0]), *author = stripped(f[1], flen[1]),
         *committer = stripped(f[2], flen[2]), *comments = stripped(f[3], flen[3]);
    const char *branch = branch_of(p, ref);
    json_t *change = json_pack("{ssssssssso}", "author", author, "committer", committer, "revision",
                               rev, "comments", comments, "files", files);
    if (change == NULL) { /* not UTF-8 */
        change = json_pack("{ssssssssso}", "author", "?", "committer", "?", "revision", rev,
                           "comments", "", "files", files);
    }
    if (p->usetimestamps)
        json_object_set_new(change, "when_timestamp", json_integer(atoll(when)));
    json_object_set_new(change, "branch",
                        json_string(util_startswith(branch, "refs/heads/") ? branch + 11 : branch));
    json_object_set_new(change, "project", json_string(p->project));
    json_object_set_new(change, "repository", json_string(p->repourl));
    json_object_set_new(change, "category",
                        p->category != NULL ? json_string(p->category) : json_null());
    free(when);
    free(author);
    free(committer);
    free(comments);
    json_t *one = json_pack("[o]", change);
    char *cause = NULL;
    if (changes_check(change, &cause) < 0) {
        log_warn("gitpoller %s: commit %s not stored: %s", p->name, rev, cause);
        free(cause);
    } else if (chg_store(p->c, one, "git") < 0) {
        /* not stored (the database is unavailable): lastRev stays, the next poll tries
           again, rather than the commit being passed over for good */
        log_warn("gitpoller %s: commit %s not stored; the next poll tries again", p->name, rev);
        json_decref(one);
        poll_done(p);
        return;
    }
    json_decref(one);
    json_array_remove(p->revs_left, 0);
    next_ref(p);
}

/* The commits of the ref in hand since the revisions last seen, newest first. */
static void got_log(struct poller *p, bool ok, struct buf *out)
{
    const char *ref = json_string_value(json_array_get(p->refs, p->i));
    const char *branch = branch_of(p, ref);
    const char *rev = json_string_value(json_object_get(p->revs, branch));
    json_t *list = json_array();
    if (ok) {
        char *text = xstrndup(out->data ? out->data : "", out->len), *save = NULL;
        for (char *w = strtok_r(text, " \n", &save); w != NULL; w = strtok_r(NULL, " \n", &save))
            json_array_insert_new(list, 0, json_string(w));
        free(text);
    }
    const char *existing = json_string_value(json_object_get(p->last, branch));
    if (p->no_commits && json_array_size(list) == 0 && !util_streq(existing, rev))
        json_array_append_new(list, json_string(rev));
    if (json_array_size(list) > 0)
        log_info("gitpoller: processing %zu changes from \"%s\" branch \"%s\"",
                 json_array_size(list), p->repourl, branch);
    json_object_set_new(p->last, branch, json_string(rev));
    json_decref(p->revs_left);
    p->revs_left = list;
    next_ref(p);
}

static void got_rev(struct poller *p, bool ok, struct buf *out)
{
    const char *ref = json_string_value(json_array_get(p->refs, p->i));
    char *rev = ok ? stripped(out->data ? out->data : "", out->len) : NULL;
    if (rev == NULL || *rev == '\0') {
        free(rev);
        p->i++;
        next_ref(p);
        return;
    }
    json_object_set_new(p->revs, branch_of(p, ref), json_string(rev));
    if (json_object_size(p->last) == 0) { /* the first poll: nothing is new */
        free(rev);
        p->i++;
        next_ref(p);
        return;
    }
    /* git log --ignore-missing --first-parent --format=%H REV ^OLD... -- */
    size_t n = json_object_size(p->last);
    const char **args = xcalloc(n + 8, sizeof *args);
    char **nots = xcalloc(n + 1, sizeof *nots);
    size_t k = 0, m = 0;
    args[k++] = "log";
    args[k++] = "--ignore-missing";
    args[k++] = "--first-parent";
    args[k++] = "--format=%H";
    args[k++] = rev;
    const char *key;
    json_t *v;
    json_object_foreach(p->last, key, v)
    {
        if (json_is_string(v) && k < 60)
            args[k++] = nots[m++] = xasprintf("^%s", json_string_value(v));
    }
    args[k++] = "--";
    args[k] = NULL;
    git(p, p->workdir, args, got_log);
    for (size_t i = 0; i < m; i++)
        free(nots[i]);
    free(nots);
    free(args);
    free(rev);
}

/* The next step: a commit of the ref in hand to read, or the next ref, or the end. */
static void next_ref(struct poller *p)
{
    if (json_array_size(p->revs_left) > 0) {
        const char *rev = json_string_value(json_array_get(p->revs_left, 0));
        const char *args[] = {"log",
                              "--name-only",
                              "--no-walk",
                              "-m",
                              "--first-parent",
                              "--format=%ct%x00%aN <%aE>%x00%cN <%cE>%x00%s%n%b%x00",
                              rev,
                              "--",
                              NULL};
        git(p, p->workdir, args, got_commit);
        return;
    }
    if (p->revs_left != NULL) { /* the ref in hand is done */
        json_decref(p->revs_left);
        p->revs_left = NULL;
        p->i++;
    }
    if (p->i >= json_array_size(p->refs)) {
        save_and_finish(p);
        return;
    }
    char *t = tracker(p, json_string_value(json_array_get(p->refs, p->i)));
    const char *args[] = {"rev-parse", t, NULL};
    git(p, p->workdir, args, got_rev);
    free(t);
}

static void fetched(struct poller *p, bool ok, struct buf *out)
{
    (void)out;
    if (!ok) {
        poll_done(p);
        return;
    }
    char *text = NULL, *cause = NULL;
    p->objectid = db_object_id(p->c->db, p->name, "GitPoller", &cause);
    if (p->objectid < 0 || db_state_get(p->c->db, p->objectid, "lastRev", &text, &cause) < 0) {
        log_error("gitpoller %s: %s", p->name, cause);
        free(cause);
        poll_done(p);
        return;
    }
    p->last = text != NULL ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(p->last)) {
        json_decref(p->last);
        p->last = json_object();
    }
    free(text);
    p->revs = json_object();
    p->i = 0;
    log_info("gitpoller: processing changes from \"%s\"", p->repourl);
    next_ref(p);
}

static void got_refs(struct poller *p, bool ok, struct buf *out)
{
    json_t *refs = json_array();
    char *text = ok ? xstrndup(out->data ? out->data : "", out->len) : xstrdup(""), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (p->branches == NULL) { /* ls-remote --symref: "ref: refs/heads/main\tHEAD" */
            if (util_startswith(line, "ref: ") && tab != NULL && strcmp(tab + 1, "HEAD") == 0) {
                *tab = '\0';
                json_array_append_new(refs, json_string(line + 5));
            }
        } else if (tab != NULL && (!p->only_tags || util_startswith(tab + 1, "refs/tags/"))) {
            json_array_append_new(refs, json_string(tab + 1));
        }
    }
    free(text);
    if (ok && p->branches == NULL && json_array_size(refs) == 0)
        json_array_append_new(refs, json_string("HEAD"));
    if (json_array_size(refs) == 0) {
        json_decref(refs);
        poll_done(p);
        return;
    }
    p->refs = refs;
    size_t n = json_array_size(refs);
    const char **args = xcalloc(n + 6, sizeof *args);
    char **specs = xcalloc(n + 1, sizeof *specs);
    size_t k = 0;
    args[k++] = "fetch";
    args[k++] = "--progress";
    args[k++] = p->repourl;
    for (size_t i = 0; i < n && k < 60; i++) {
        const char *ref = json_string_value(json_array_get(refs, i));
        char *t = tracker(p, ref);
        args[k++] = specs[i] = xasprintf("+%s:%s", ref, t);
        free(t);
    }
    args[k++] = "--";
    args[k] = NULL;
    git(p, p->workdir, args, fetched);
    for (size_t i = 0; i < n; i++)
        free(specs[i]);
    free(specs);
    free(args);
}

static void inited(struct poller *p, bool ok, struct buf *out)
{
    (void)out;
    if (!ok) {
        poll_done(p);
        return;
    }
    const char *args[64];
    size_t k = 0;
    args[k++] = "ls-remote";
    char **heads = NULL;
    size_t n = json_is_array(p->branches) ? json_array_size(p->branches) : 0;
    if (p->branches == NULL) {
        args[k++] = "--symref";
        args[k++] = p->repourl;
        args[k++] = "HEAD";
    } else {
        args[k++] = "--refs";
        args[k++] = p->repourl;
        if (json_is_true(p->branches))
            args[k++] = "refs/heads/*";
        heads = xcalloc(n + 1, sizeof *heads);
        for (size_t i = 0; i < n && k < 60; i++)
            args[k++] = heads[i] =
                xasprintf("refs/heads/%s", json_string_value(json_array_get(p->branches, i)));
    }
    args[k] = NULL;
    git(p, NULL, args, got_refs);
    for (size_t i = 0; i < n; i++)
        free(heads[i]);
    free(heads);
}

/* Reads the poller's parameters from the configuration and starts a poll. */
static void poll_start(struct poller *p)
{
    if (p->polling || p->c == NULL)
        return;
    const struct cfg_change_source *cs = NULL;
    for (size_t i = 0; i < p->c->cfg->n_change_sources; i++)
        if (strcmp(p->c->cfg->change_sources[i].name, p->name) == 0)
            cs = &p->c->cfg->change_sources[i];
    if (cs == NULL)
        return;
    lua_State *L = p->c->cfg->lua;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, cs->ref);
    int t = lua_gettop(L);
    json_t *opts = cfg_lua_to_json(L, t);
    lua_settop(L, top);
    const char *s;
    p->repourl = xstrdup((s = json_string_value(json_object_get(opts, "repourl"))) ? s : "");
    p->gitbin = xstrdup((s = json_string_value(json_object_get(opts, "gitbin"))) ? s : "git");
    p->workdir =
        xstrdup((s = json_string_value(json_object_get(opts, "workdir"))) ? s : "gitpoller-work");
    p->project = xstrdup((s = json_string_value(json_object_get(opts, "project"))) ? s : "");
    p->category = (s = json_string_value(json_object_get(opts, "category"))) ? xstrdup(s) : NULL;
    const json_t *ts = json_object_get(opts, "usetimestamps");
    p->usetimestamps = ts == NULL || json_is_true(ts);
    p->no_commits = json_is_true(json_object_get(opts, "buildPushesWithNoCommits"));
    p->only_tags = json_is_true(json_object_get(opts, "only_tags"));
    const json_t *branch = json_object_get(opts, "branch"),
                 *branches = json_object_get(opts, "branches");
    p->branches = json_is_string(branch) ? json_pack("[O]", branch)
                  : json_is_true(branches) || json_is_array(branches)
                      ? json_incref((json_t *)branches)
                  : p->only_tags ? json_true()
                                 : NULL;
    if (p->only_tags) { /* every ref, the tags kept */
        json_decref(p->branches);
        p->branches = json_false();
    }
    p->trim = json_is_array(p->branches);
    json_decref(opts);
    p->polling = true;
    const char *args[] = {"init", "--bare", p->workdir, NULL};
    git(p, NULL, args, inited);
}

/* ------------------------------------------------------------ pollers */

static void tick(uv_timer_t *t)
{
    poll_start(t->data);
}

static void timer_closed(uv_handle_t *h)
{
    struct poller *p = h->data;
    p->handles--;
    poller_maybe_free(p);
}

static void poller_maybe_free(struct poller *p)
{
    if (p->c != NULL || p->handles > 0)
        return;
    poll_done(p);
    free(p->name);
    free(p);
}

static void poller_stop(struct poller *p)
{
    p->c = NULL;
    uv_close((uv_handle_t *)&p->timer, timer_closed);
    if (p->running != NULL)
        uv_process_kill(&p->running->proc, SIGTERM);
}

void poller_reconfig(struct chg *c)
{
    struct poller *old = c->pollers, *list = NULL;
    for (size_t i = 0; i < c->cfg->n_change_sources; i++) {
        const struct cfg_change_source *cs = &c->cfg->change_sources[i];
        if (strcmp(cs->kind, "git_poller") != 0)
            continue;
        struct poller *p = NULL;
        for (struct poller **q = &old; *q != NULL; q = &(*q)->next) {
            if (strcmp((*q)->name, cs->name) == 0) {
                p = *q;
                *q = p->next;
                break;
            }
        }
        lua_State *L = c->cfg->lua;
        int top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, cs->ref);
        double interval =
            lua_getfield(L, -1, "pollInterval") == LUA_TNUMBER ? lua_tonumber(L, -1) : 600;
        bool at_launch = (lua_getfield(L, -2, "pollAtLaunch"), lua_toboolean(L, -1));
        lua_settop(L, top);
        if (interval < 1)
            interval = 1;
        bool fresh = p == NULL;
        if (fresh) {
            p = xcalloc(1, sizeof *p);
            p->c = c;
            p->name = xstrdup(cs->name);
            uv_timer_init(c->loop, &p->timer);
            p->timer.data = p;
            p->handles = 1;
        }
        if (fresh || interval != p->interval) {
            uint64_t ms = (uint64_t)(interval * 1000);
            uv_timer_start(&p->timer, tick, fresh && at_launch ? 0 : ms, ms);
        }
        p->interval = interval;
        p->next = list;
        list = p;
    }
    while (old != NULL) {
        struct poller *p = old;
        old = p->next;
        poller_stop(p);
    }
    c->pollers = list;
}

void poller_stop_all(struct chg *c)
{
    while (c->pollers != NULL) {
        struct poller *p = c->pollers;
        c->pollers = p->next;
        poller_stop(p);
    }
}
