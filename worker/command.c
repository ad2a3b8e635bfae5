/*
 * command.c: the commands a builder runs for the master (SPEC 5.6-5.8).
 *
 * startCommand(remote, id, name, args) creates a struct bbw_cmd that reports
 * to the master's RemoteCommand: output as `update` calls, then `rc`, then
 * complete().  Output is batched: each stream keeps its unfinished last line
 * back (as buildbot-worker sends whole lines), finished lines join one batch
 * that is sent when another stream speaks, when it reaches BBW_BATCH_MAX, or
 * BBW_FLUSH_MS after its first byte.  The work itself is in shell.c (a
 * process) or fs.c (file system calls).
 */
#include <stdlib.h>
#include <string.h>

#include "bbw_internal.h"
#include "util/util.h"

/* buildbot-worker's registry, in its order (the snake_case names are msgpack's aliases) */
const char *const bbw_cmd_names[] = {
    "shell",        "uploadFile",    "upload_file", "uploadDirectory", "upload_directory",
    "downloadFile", "download_file", "mkdir",       "rmdir",           "cpdir",
    "stat",         "glob",          "listdir",     "rmfile",          NULL};

static const char *const stream_key[] = {"header", "stdout", "stderr"};

/* The bytes one U+FFFD stands for at an ill-formed sequence, as Python's decoder counts
   them (Unicode's "maximal subpart"): a lead byte with the continuation bytes that could
   still have made a character, else the one byte. */
static size_t bad_run(const unsigned char *p, size_t len)
{
    unsigned lead = p[0];
    if (lead < 0xc2 || lead > 0xf4)
        return 1;
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    /* the second byte's range excludes overlongs, surrogates and past U+10FFFF */
    unsigned lo = lead == 0xe0 ? 0xa0 : lead == 0xf0 ? 0x90 : 0x80;
    unsigned hi = lead == 0xed ? 0x9f : lead == 0xf4 ? 0x8f : 0xbf;
    size_t n = 1;
    while (n < need && n < len && p[n] >= (n == 1 ? lo : 0x80) && p[n] <= (n == 1 ? hi : 0xbf))
        n++;
    return n;
}

/* Bytes -> text: each ill-formed byte sequence becomes one U+FFFD, as Python's "replace". */
struct pb_value *bbw_utf8_text(const char *s, size_t len)
{
    size_t ok = util_utf8_valid(s, len);
    if (ok == len) /* the usual case: all of it, copied once */
        return pb_textn(s, len);
    struct buf b;
    buf_init(&b, 0);
    for (;;) {
        buf_add(&b, s, ok); /* a valid run whole, then U+FFFD for what ends it */
        if (ok == len)
            break;
        buf_addstr(&b, "\xef\xbf\xbd");
        size_t bad = bad_run((const unsigned char *)s + ok, len - ok);
        s += ok + bad;
        len -= ok + bad;
        ok = util_utf8_valid(s, len);
    }
    struct pb_value *v = pb_textn(b.data ? b.data : "", b.len);
    buf_free(&b);
    return v;
}

size_t bbw_utf8_cut(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = len;
    while (i > 0 && len - i < 3 && (p[i - 1] & 0xc0) == 0x80)
        i--;
    if (i == 0 || p[i - 1] < 0xc0)
        return len; /* ends with ASCII or stray continuation bytes: nothing to wait for */
    unsigned lead = p[i - 1];
    if (lead < 0xc2 || lead > 0xf4)
        return len; /* never the start of a character: replaced at once */
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    return len - (i - 1) >= need ? len : i - 1;
}

static void send_update(struct bbw_cmd *c, const char *key, struct pb_value *value)
{
    if (c->abandoned) {
        pb_value_free(value);
        return;
    }
    struct pb_value *pair = pb_list();
    pb_append(pair, pb_dict_set(pb_dict(), key, value));
    pb_append(pair, pb_int(0));
    struct pb_value *args = pb_append(pb_tuple(), pb_append(pb_list(), pair));
    char *cause = NULL;
    if (pb_broker_call(c->broker, c->remote, "update", args, NULL, NULL, NULL, &cause) < 0) {
        log_warn("command %s: cannot send an update: %s", c->id, cause);
        free(cause);
    }
}

static void flush_batch(struct bbw_cmd *c)
{
    uv_timer_stop(&c->flush);
    if (c->batch.len == 0)
        return;
    send_update(c, stream_key[c->batch_stream], bbw_utf8_text(c->batch.data, c->batch.len));
    buf_reset(&c->batch);
}

static void flush_cb(uv_timer_t *t)
{
    flush_batch(t->data);
}

/* Moves [data, len) of `stream` into the batch, sending batches as they fill. */
static void batch_add(struct bbw_cmd *c, enum bbw_stream stream, const char *data, size_t len)
{
    if (c->batch.len && c->batch_stream != stream)
        flush_batch(c);
    c->batch_stream = stream;
    while (len > 0) {
        size_t room = BBW_BATCH_MAX - c->batch.len, n = len < room ? len : room;
        if (n < len && bbw_utf8_cut(data, n) > 0)
            n = bbw_utf8_cut(data, n); /* a character split here waits for the next batch */
        buf_add(&c->batch, data, n);
        data += n;
        len -= n;
        if (len > 0 || c->batch.len >= BBW_BATCH_MAX)
            flush_batch(c);
    }
    if (c->batch.len && !uv_is_active((uv_handle_t *)&c->flush))
        uv_timer_start(&c->flush, flush_cb, BBW_FLUSH_MS, 0);
}

void bbw_cmd_output(struct bbw_cmd *c, enum bbw_stream stream, const char *data, size_t len)
{
    if (c->finished)
        return;
    struct buf *p = &c->partial[stream];
    if (p->len == 0) { /* no line held back: the whole lines go to the batch from here */
        size_t cut = len;
        while (cut > 0 && data[cut - 1] != '\n')
            cut--;
        if (cut > 0)
            batch_add(c, stream, data, cut);
        data += cut;
        len -= cut;
    }
    buf_add(p, data, len);
    size_t cut = p->len;
    while (cut > 0 && p->data[cut - 1] != '\n')
        cut--;
    if (cut == 0 && p->len > BBW_LINE_MAX)
        cut = bbw_utf8_cut(p->data, p->len);
    if (cut > 0) {
        batch_add(c, stream, p->data, cut);
        buf_consume(p, cut);
    }
}

/* Every held-back partial line goes out, then the batch. */
static void flush_all(struct bbw_cmd *c)
{
    for (int s = BBW_HEADER; s <= BBW_STDERR; s++) {
        if (c->partial[s].len) {
            batch_add(c, (enum bbw_stream)s, c->partial[s].data, c->partial[s].len);
            buf_reset(&c->partial[s]);
        }
    }
    flush_batch(c);
}

void bbw_cmd_update(struct bbw_cmd *c, const char *key, struct pb_value *value)
{
    flush_all(c);
    send_update(c, key, value);
}

bool bbw_cmd_congested(const struct bbw_cmd *c)
{
    return !c->abandoned && (bbw_send_queued(c->w) >= BBW_SEND_HIGH ||
                             pb_broker_pending(c->broker) >= BBW_PENDING_HIGH);
}

static void cmd_free(struct bbw_cmd *c)
{
    for (int s = 0; s < 3; s++)
        buf_free(&c->partial[s]);
    buf_free(&c->batch);
    free(c->id);
    free(c->name);
    free(c);
}

void bbw_cmd_release(struct bbw_cmd *c)
{
    if (--c->holds == 0)
        cmd_free(c);
}

static void flush_closed_cb(uv_handle_t *h)
{
    bbw_cmd_release(h->data);
}

void bbw_cmd_finish(struct bbw_cmd *c, struct pb_value *failure)
{
    if (c->finished) {
        pb_value_free(failure);
        return;
    }
    flush_all(c);
    c->finished = true;
    if (!c->abandoned) {
        char *cause = NULL;
        if (pb_broker_call(c->broker, c->remote, "complete",
                           pb_append(pb_tuple(), failure ? failure : pb_none()), NULL, NULL, NULL,
                           &cause) < 0) {
            log_warn("command %s: cannot send complete: %s", c->id, cause);
            free(cause);
        }
        pb_broker_decref(c->broker, c->remote);
        log_info("command %s (%s) finished", c->id, c->name);
    } else {
        pb_value_free(failure);
    }
    if (c->b && c->b->cmd == c)
        c->b->cmd = NULL;
    c->b = NULL;
    uv_close((uv_handle_t *)&c->flush, flush_closed_cb);
}

char *bbw_cmd_path(const struct bbw_cmd *c, const char *rel)
{
    const char *builddir = c->b ? c->b->builddir : "";
    char *base = builddir[0] == '/' ? xstrdup(builddir) : xasprintf("%s/%s", c->w->dir, builddir);
    if (!rel || !*rel)
        return base;
    if (rel[0] == '/') {
        free(base);
        return xstrdup(rel);
    }
    char *p = xasprintf("%s/%s", base, rel);
    free(base);
    return p;
}

/* Reads the shell command's arguments (SPEC 5.8) into o. */
static int shell_opts(const struct pb_value *a, struct bbw_shell_opts *o, char **cause)
{
    memset(o, 0, sizeof(*o));
    o->command = pb_dict_get(a, "command");
    if (!o->command ||
        !(pb_is_str(o->command) || o->command->kind == PB_LIST || o->command->kind == PB_TUPLE) ||
        (!pb_is_str(o->command) && pb_len(o->command) == 0))
        return util_cause(cause, "shell: 'command' must be a text or a non-empty list");
    struct pb_value *v = pb_dict_get(a, "workdir");
    o->workdir = pb_is_str(v) ? pb_str(v) : "build";
    o->env = pb_dict_get(a, "env");
    if (o->env && o->env->kind == PB_NONE)
        o->env = NULL;
    if (o->env && o->env->kind != PB_DICT)
        return util_cause(cause, "shell: 'env' must be a dict");
    v = pb_dict_get(a, "want_stdout");
    o->want_stdout = !v || v->kind == PB_NONE || (v->kind == PB_BOOL ? v->u.b : v->u.i != 0);
    v = pb_dict_get(a, "want_stderr");
    o->want_stderr = !v || v->kind == PB_NONE || (v->kind == PB_BOOL ? v->u.b : v->u.i != 0);
    v = pb_dict_get(a, "logEnviron");
    o->log_environ = !v || v->kind == PB_NONE || (v->kind == PB_BOOL ? v->u.b : v->u.i != 0);
    v = pb_dict_get(a, "timeout");
    o->timeout = v && v->kind == PB_INT     ? (long)v->u.i
                 : v && v->kind == PB_FLOAT ? (long)v->u.f
                 : v && v->kind == PB_NONE  ? 0
                                            : 1200;
    v = pb_dict_get(a, "maxTime");
    o->max_time = v && v->kind == PB_INT     ? (long)v->u.i
                  : v && v->kind == PB_FLOAT ? (long)v->u.f
                                             : 0;
    v = pb_dict_get(a, "max_lines");
    o->max_lines = v && v->kind == PB_INT && v->u.i >= 0 ? (long)v->u.i : -1;
    if (v && v->kind != PB_NONE && o->max_lines < 0)
        return util_cause(cause, "shell: 'max_lines' must be a number of lines or None");
    v = pb_dict_get(a, "sigtermTime");
    o->sigterm_time = v && v->kind == PB_INT     ? (double)v->u.i
                      : v && v->kind == PB_FLOAT ? v->u.f
                                                 : -1;
    v = pb_dict_get(a, "interruptSignal");
    o->interrupt_signal = pb_is_str(v) ? bbw_signal_number(pb_str(v)) : 9;
    if (o->interrupt_signal < 0)
        return util_cause(cause, "shell: unknown interruptSignal '%s'", pb_str(v));
    v = pb_dict_get(a, "initial_stdin");
    if (v && v->kind != PB_NONE) {
        if (!pb_is_str(v))
            return util_cause(cause, "shell: 'initial_stdin' must be a text");
        o->initial_stdin = v->u.s.data;
        o->initial_stdin_len = v->u.s.len;
    }
    v = pb_dict_get(a, "usePTY");
    o->use_pty = v && ((v->kind == PB_BOOL && v->u.b) || (v->kind == PB_INT && v->u.i));
    if (o->use_pty && o->initial_stdin)
        return util_cause(cause, "shell: initial_stdin with usePTY is not supported by bbworker");
    o->logfiles = pb_dict_get(a, "logfiles");
    if (bbw_logfiles_check(o->logfiles, cause) < 0)
        return -1;
    o->header = true;
    return 0;
}

static struct bbw_cmd *cmd_new(struct bbw_builder *b, struct pb_call *call)
{
    struct bbw_cmd *c = xcalloc(1, sizeof(*c));
    c->w = b->w;
    c->b = b;
    c->broker = call->broker;
    c->remote = pb_item(call->args, 0)->u.luid;
    c->id = xstrdup(pb_str(pb_item(call->args, 1)));
    c->name = xstrdup(pb_str(pb_item(call->args, 2)));
    c->started_ns = uv_hrtime();
    for (int s = 0; s < 3; s++)
        buf_init(&c->partial[s], 0);
    buf_init(&c->batch, 0);
    uv_timer_init(c->w->loop, &c->flush);
    c->flush.data = c;
    c->holds = 1; /* the flush timer, closed by bbw_cmd_finish */
    b->cmd = c;
    return c;
}

/* A refused startCommand still lets go of the references it brought (the master's table
   of objects a worker holds is bounded). */
static void release_remotes(struct pb_call *call)
{
    struct pb_value *rc = pb_item(call->args, 0), *args = pb_item(call->args, 3);
    if (rc && rc->kind == PB_REMOTE)
        pb_broker_decref(call->broker, rc->u.luid);
    for (size_t i = 0; args && args->kind == PB_DICT && i + 1 < args->u.list.n; i += 2) {
        struct pb_value *v = args->u.list.items[i + 1];
        if (v && v->kind == PB_REMOTE)
            pb_broker_decref(call->broker, v->u.luid);
    }
}

void bbw_cmd_start(struct bbw_builder *b, struct pb_call *call)
{
    struct pb_value *remote = pb_item(call->args, 0), *args = pb_item(call->args, 3);
    const char *id = pb_str(pb_item(call->args, 1)), *name = pb_str(pb_item(call->args, 2));
    if (!remote || remote->kind != PB_REMOTE || !id || !name || !args || args->kind != PB_DICT) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error,
                          "startCommand needs (remote, id, name, args dict)");
        return;
    }
    bool known = false;
    for (const char *const *n = bbw_cmd_names; *n && !known; n++)
        known = strcmp(*n, name) == 0;
    if (!known) {
        release_remotes(call);
        pb_call_fail_with(call, "buildbot_worker.exceptions.UnknownCommand", pb_parents_pb_error,
                          "(command %s): unrecognized WorkerCommand '%s'", id, name);
        return;
    }
    if (b->cmd) {
        release_remotes(call);
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error,
                          "command %s: builder %s is already running command %s", id, b->name,
                          b->cmd->id);
        return;
    }
    struct bbw_shell_opts o;
    char *cause = NULL;
    /* the call (and its args) is freed by the answer, which goes before any update */
    args = pb_value_dup(args);
    bool refused = strcmp(name, "shell") == 0 && shell_opts(args, &o, &cause) < 0;
    log_info("command %s: %s on builder %s", id, name, b->name);
    struct bbw_cmd *c = cmd_new(b, call);
    pb_call_answer(call, NULL); /* id and name are gone with the call */
    if (refused) {
        /* reported as a command that could not start (stderr, complete with a failure, no
           rc): every master ends the step in EXCEPTION, waiting for nothing */
        char *text = xasprintf("%s\n", cause);
        log_warn("command %s: %s", c->id, cause);
        bbw_cmd_output(c, BBW_STDERR, text, strlen(text));
        bbw_cmd_finish(c, pb_failure_new("builtins.RuntimeError", cause, pb_parents_runtime_error));
        free(text);
        free(cause);
    } else if (strcmp(c->name, "shell") == 0) {
        char *workdir = bbw_cmd_path(c, o.workdir);
        o.workdir = workdir;
        bbw_shell_run(c, &o);
        free(workdir);
    } else if (bbw_fs_run(c, c->name, args) < 0 && bbw_transfer_run(c, c->name, args) < 0) {
        for (size_t i = 0; i + 1 < args->u.list.n; i += 2)
            if (args->u.list.items[i + 1]->kind == PB_REMOTE)
                pb_broker_decref(c->broker, args->u.list.items[i + 1]->u.luid);
        bbw_cmd_update(c, "stderr",
                       pb_text("the master's arguments name no file or no writer/reader\n"));
        bbw_cmd_update(c, "rc", pb_int(1));
        bbw_cmd_finish(c, NULL);
    }
    pb_value_free(args);
}

void bbw_cmd_interrupt(struct bbw_builder *b, struct pb_call *call)
{
    struct bbw_cmd *c = b->cmd;
    if (c && !c->finished) {
        char shown[200];
        log_info("command %s interrupted: %s", c->id,
                 util_escape_str(shown, sizeof(shown), pb_str(pb_item(call->args, 1))));
        c->interrupted = true;
        if (c->shell)
            bbw_shell_interrupt(c->shell);
    }
    pb_call_answer(call, NULL);
}

void bbw_cmd_abandon(struct bbw_builder *b)
{
    struct bbw_cmd *c = b->cmd;
    if (!c)
        return;
    log_info("command %s (%s) abandoned: the master is gone", c->id, c->name);
    c->abandoned = true;
    c->b = NULL;
    b->cmd = NULL;
    if (c->shell)
        bbw_shell_abandon(c->shell);
    else
        bbw_cmd_finish(c, NULL);
}
