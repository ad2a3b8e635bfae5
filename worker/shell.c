/*
 * shell.c: one child process for a command (SPEC 5.8 `shell`, and the rm/cp
 * of rmdir and cpdir), run as buildbot-worker's RunProcess runs it: in its
 * own process group in the work directory, with the master's environment
 * merged into the worker's, the same header lines, a timeout without output,
 * a maxTime, kills of the whole group (TERM first when sigtermTime is set),
 * and rc, `elapsedTime` and `elapsed` reported as Buildbot's.
 *
 * Back-pressure: when the connection to the master holds BBW_SEND_HIGH bytes
 * (or too many calls wait for answers), the child's pipes are no longer read,
 * so a child that floods its output blocks in write() instead of filling the
 * worker's memory; reading resumes when the socket drains.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "bbw_internal.h"
#include "util/util.h"

extern char **environ;

#define KILL_GRACE_MS 5000 /* a killed group that is still there: fake rc -1 (Python's 5 s) */

struct bbw_shell {
    struct bbw_cmd *cmd;
    uv_process_t proc;
    uv_pipe_t pipe[3]; /* stdin, stdout, stderr */
    uv_timer_t timeout, max_time, kill, poll, logpoll;
    struct bbw_logfiles *logfiles;
    uv_write_t stdin_req;
    uv_shutdown_t stdin_shut;
    char *stdin_data;
    int open; /* handles not yet closed */
    bool exited, eof[3], paused, waiting_drain, dead, killing;
    bool paused_once; /* said in the log, once per command */
    bool spawned;     /* uv_spawn was called: the process handle is initialised */
    int64_t status;
    int term_signal;
    long timeout_s, max_time_s;
    long max_lines, line_count; /* max_lines < 0: none */
    double sigterm_time;
    int interrupt_signal;
    bool want[3];
    char *argv_repr; /* [b'sh', b'-c', ...] */
};

static const struct {
    const char *name;
    int num;
} signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
               {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ALRM", SIGALRM},
               {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}};

int bbw_signal_number(const char *name)
{
    if (strncmp(name, "SIG", 3) == 0)
        name += 3;
    for (size_t i = 0; i < UTIL_NELEM(signals); i++)
        if (strcmp(signals[i].name, name) == 0)
            return signals[i].num;
    return -1;
}

static const char *signal_name(int sig)
{
    for (size_t i = 0; i < UTIL_NELEM(signals); i++)
        if (signals[i].num == sig)
            return signals[i].name;
    return "KILL";
}

/* Python's repr() of a bytes object. */
static void bytes_repr(struct buf *b, const char *s)
{
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    buf_printf(b, "b%c", q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char)q)
            buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            buf_addstr(b, "\\n");
        else if (*p == '\r')
            buf_addstr(b, "\\r");
        else if (*p == '\t')
            buf_addstr(b, "\\t");
        else if (*p < 0x20 || *p >= 0x7f)
            buf_printf(b, "\\x%02x", *p);
        else
            buf_addc(b, (char)*p);
    }
    buf_addc(b, q);
}

/* Python's shlex.quote(). */
static void shell_quote(struct buf *b, const char *s)
{
    bool plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_",
                       *p) != NULL;
    if (plain) {
        buf_addstr(b, s);
        return;
    }
    buf_addc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            buf_addstr(b, "'\"'\"'");
        else
            buf_addc(b, *p);
    }
    buf_addc(b, '\'');
}

/*
 * The argv to run and the one to show (obfuscated elements show their fake
 * text).  A text command runs under /bin/sh -c.  NULL-terminated, malloc'd.
 */
static int command_argv(const struct pb_value *cmd, char ***run, char ***show, char **cause)
{
    size_t n = pb_is_str(cmd) ? 3 : pb_len(cmd);
    char **r = xcalloc(n + 1, sizeof(char *)), **s = xcalloc(n + 1, sizeof(char *));
    if (pb_is_str(cmd)) {
        r[0] = xstrdup("/bin/sh");
        r[1] = xstrdup("-c");
        r[2] = xstrdup(pb_str(cmd));
    }
    for (size_t i = 0; !pb_is_str(cmd) && i < n; i++) {
        struct pb_value *e = pb_item(cmd, i);
        if (pb_is_str(e)) {
            r[i] = xstrdup(pb_str(e));
        } else if (pb_len(e) == 3 && pb_is_str(pb_item(e, 1)) && pb_is_str(pb_item(e, 2)) &&
                   util_streq(pb_str(pb_item(e, 0)), "obfuscated")) {
            r[i] = xstrdup(pb_str(pb_item(e, 1)));
            s[i] = xstrdup(pb_str(pb_item(e, 2)));
        } else if (e && (e->kind == PB_INT)) {
            r[i] = xasprintf("%lld", (long long)e->u.i);
        } else {
            for (size_t j = 0; j < n; j++) {
                free(r[j]);
                free(s[j]);
            }
            free(r);
            free(s);
            return util_cause(cause,
                              "shell: command element %zu is neither a text nor an "
                              "('obfuscated', real, fake) triple",
                              i);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!s[i])
            s[i] = xstrdup(r[i]);
    *run = r;
    *show = s;
    return 0;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Value with ${NAME} replaced from the worker's own environment (unset -> ""). */
static char *expand(const char *v)
{
    struct buf b;
    buf_init(&b, 0);
    while (*v) {
        const char *close;
        if (v[0] == '$' && v[1] == '{' && (close = strchr(v + 2, '}')) != NULL) {
            bool name = true;
            for (const char *p = v + 2; p < close && name; p++)
                name = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                       (*p >= 'A' && *p <= 'Z') || *p == '_';
            if (name) {
                char *k = xstrndup(v + 2, (size_t)(close - v - 2));
                const char *val = getenv(k);
                free(k);
                buf_addstr(&b, val ? val : "");
                v = close + 1;
                continue;
            }
        }
        buf_addc(&b, *v++);
    }
    return buf_take(&b);
}

/* One variable of the master's env as it will be set (NULL: deleted), malloc'd. */
static char *env_value(const char *key, const struct pb_value *v, bool *ok)
{
    *ok = true;
    if (v->kind == PB_NONE)
        return NULL;
    struct buf b;
    buf_init(&b, 0);
    if (v->kind == PB_LIST || v->kind == PB_TUPLE) {
        for (size_t i = 0; i < pb_len(v); i++) {
            if (!pb_is_str(pb_item(v, i)))
                *ok = false;
            buf_printf(&b, "%s%s", i ? ":" : "",
                       pb_is_str(pb_item(v, i)) ? pb_str(pb_item(v, i)) : "");
        }
    } else if (pb_is_str(v)) {
        buf_addstr(&b, pb_str(v));
    } else {
        *ok = false;
    }
    if (strcmp(key, "PYTHONPATH") == 0)
        buf_addstr(&b, ":${PYTHONPATH}");
    char *raw = buf_take(&b);
    char *out = expand(raw);
    free(raw);
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The child's environment "K=V" (sorted, NULL-terminated, malloc'd). */
static int child_env(const struct pb_value *env, const char *workdir, char ***out, char **cause)
{
    size_t n = 0, cap = 0;
    char **e = NULL;
    for (char **p = environ; *p; p++) {
        char *eq = strchr(*p, '=');
        if (!eq || strncmp(*p, "PWD=", 4) == 0)
            continue;
        char *k = xstrndup(*p, (size_t)(eq - *p));
        bool overridden = env && pb_dict_get(env, k);
        free(k);
        if (overridden)
            continue;
        e = xgrow(e, &cap, n + 2, sizeof(char *));
        e[n++] = xstrdup(*p);
    }
    for (size_t i = 0; env && i + 1 < env->u.list.n; i += 2) {
        const char *k = pb_str(env->u.list.items[i]);
        bool ok;
        char *v = k ? env_value(k, env->u.list.items[i + 1], &ok) : NULL;
        if (!k || !ok || strchr(k, '=') || strcmp(k, "PWD") == 0) {
            free(v);
            if (!k || !ok || strchr(k, '=')) {
                e = xgrow(e, &cap, n + 1, sizeof(char *));
                e[n] = NULL;
                free_strv(e);
                return util_cause(cause,
                                  "shell: env: '%s' must be a name with a text, a list "
                                  "of texts or None",
                                  k ? k : "?");
            }
            continue;
        }
        if (v) {
            e = xgrow(e, &cap, n + 2, sizeof(char *));
            e[n++] = xasprintf("%s=%s", k, v);
        }
        free(v);
    }
    e = xgrow(e, &cap, n + 2, sizeof(char *));
    e[n++] = xasprintf("PWD=%s", workdir);
    e[n] = NULL;
    qsort(e, n, sizeof(char *), cmp_str);
    *out = e;
    return 0;
}

static void header(struct bbw_shell *s, const char *text)
{
    bbw_cmd_output(s->cmd, BBW_HEADER, text, strlen(text));
}

static void send_header(struct bbw_shell *s, char **show, const struct bbw_shell_opts *o,
                        char **env)
{
    struct buf b;
    buf_init(&b, 0);
    if (pb_is_str(o->command)) {
        buf_addstr(&b, pb_str(o->command));
    } else {
        for (size_t i = 0; show[i]; i++) {
            if (i)
                buf_addc(&b, ' ');
            shell_quote(&b, show[i]);
        }
    }
    buf_printf(&b, "\n in dir %s", o->workdir);
    if (o->timeout > 0)
        buf_printf(&b, " (timeout %ld %s)", o->timeout, o->timeout == 1 ? "sec" : "secs");
    if (o->max_time > 0)
        buf_printf(&b, " (maxTime %ld %s)", o->max_time, o->max_time == 1 ? "sec" : "secs");
    buf_addstr(&b, "\n watching logfiles ");
    bbw_logfiles_repr(&b, o->logfiles);
    buf_printf(&b, "\n argv: %s\n", s->argv_repr);
    if (o->log_environ) {
        buf_addstr(&b, " environment:\n");
        for (size_t i = 0; env[i]; i++) {
            char *eq = strchr(env[i], '=');
            buf_printf(&b, "  %.*s=%s\n", (int)(eq - env[i]), env[i], eq + 1);
        }
    }
    if (o->initial_stdin)
        buf_printf(&b, " writing %zu bytes to stdin\n", o->initial_stdin_len);
    buf_printf(&b, " using PTY: %s\n", o->use_pty ? "True" : "False");
    bbw_cmd_output(s->cmd, BBW_HEADER, b.data, b.len);
    buf_free(&b);
}

/* ---------------------------------------------------------- lifetime */

static void shell_closed_cb(uv_handle_t *h)
{
    struct bbw_shell *s = h->data;
    if (--s->open > 0)
        return;
    struct bbw_cmd *c = s->cmd;
    free(s->argv_repr);
    free(s->stdin_data);
    bbw_logfiles_free(s->logfiles);
    free(s);
    bbw_cmd_release(c);
}

static void close_handle(struct bbw_shell *s, uv_handle_t *h)
{
    h->data = s;
    if (!uv_is_closing(h))
        uv_close(h, shell_closed_cb);
}

static void close_all(struct bbw_shell *s)
{
    for (int i = 0; i < 3; i++)
        close_handle(s, (uv_handle_t *)&s->pipe[i]);
    close_handle(s, (uv_handle_t *)&s->timeout);
    close_handle(s, (uv_handle_t *)&s->max_time);
    close_handle(s, (uv_handle_t *)&s->kill);
    close_handle(s, (uv_handle_t *)&s->poll);
    close_handle(s, (uv_handle_t *)&s->logpoll);
    if (s->spawned)
        close_handle(s, (uv_handle_t *)&s->proc);
    s->cmd->shell = NULL;
}

/* The process is gone and its pipes are closed: rc, elapsedTime, elapsed, complete. */
static void report_end(struct bbw_shell *s, bool fake)
{
    struct bbw_cmd *c = s->cmd;
    double elapsed = (double)(uv_hrtime() - c->started_ns) / 1e9;
    if (!c->abandoned && !c->finished) {
        int rc = (int)s->status;
        bbw_logfiles_poll(s->logfiles, true); /* the last of them, before rc */
        if (fake) {
            char text[128];
            snprintf(text, sizeof(text), "SIG%s failed to kill process\nusing fake rc=-1\n",
                     signal_name(s->interrupt_signal));
            header(s, text);
            rc = -1;
        } else if (s->term_signal) {
            char text[64];
            snprintf(text, sizeof(text), "process killed by signal %d\n", s->term_signal);
            header(s, text);
            rc = -1;
        }
        bbw_cmd_update(c, "rc", pb_int(rc));
        char text[64];
        snprintf(text, sizeof(text), "elapsedTime=%0.6f\n", elapsed);
        header(s, text);
        if (!c->interrupted && !fake)
            bbw_cmd_update(c, "elapsed", pb_float(elapsed));
        bbw_cmd_finish(c, fake ? pb_failure_new("builtins.RuntimeError",
                                                "SIGKILL failed to kill process",
                                                pb_parents_runtime_error)
                               : NULL);
    } else {
        bbw_cmd_finish(c, NULL);
    }
    close_all(s);
}

static void maybe_done(struct bbw_shell *s)
{
    if (s->dead || !s->exited || !s->eof[1] || !s->eof[2])
        return;
    s->dead = true;
    report_end(s, false);
}

static void exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    struct bbw_shell *s = p->data;
    s->exited = true;
    s->status = status;
    s->term_signal = term_signal;
    uv_timer_stop(&s->timeout);
    uv_timer_stop(&s->max_time);
    if (!s->killing)
        uv_timer_stop(&s->kill);
    maybe_done(s);
}

/* ------------------------------------------------------------ output */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    static char chunk[64 * 1024];
    *b = uv_buf_init(chunk, sizeof(chunk));
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* The socket drained (the command may have ended meanwhile: it is held, not the shell). */
static void resume_cb(void *arg)
{
    struct bbw_cmd *c = arg;
    if (c->shell) {
        c->shell->waiting_drain = false;
        bbw_shell_resume(c->shell);
    }
    bbw_cmd_release(c);
}

static void poll_cb(uv_timer_t *t)
{
    bbw_shell_resume(t->data);
}

/* Waits for the socket to drain, or for the master to answer calls (polled: it is rare). */
static void wait_then_resume(struct bbw_shell *s)
{
    if (bbw_send_queued(s->cmd->w) >= BBW_SEND_HIGH) {
        if (!s->waiting_drain) {
            s->waiting_drain = true;
            s->cmd->holds++;
            bbw_on_drain(s->cmd->w, resume_cb, s->cmd);
        }
    } else {
        uv_timer_start(&s->poll, poll_cb, 10, 0);
    }
}

void bbw_shell_resume(struct bbw_shell *s)
{
    if (!s->paused || s->dead)
        return;
    if (bbw_cmd_congested(s->cmd)) {
        wait_then_resume(s);
        return;
    }
    s->paused = false;
    for (int i = 1; i < 3; i++)
        if (!s->eof[i])
            uv_read_start((uv_stream_t *)&s->pipe[i], alloc_cb, read_cb);
}

static void pause_output(struct bbw_shell *s)
{
    if (!s->paused_once)
        log_info("command %s: output waits for the master (%zu bytes queued, %zu calls "
                 "unanswered)",
                 s->cmd->id, bbw_send_queued(s->cmd->w), pb_broker_pending(s->cmd->broker));
    s->paused_once = true;
    s->paused = true;
    for (int i = 1; i < 3; i++)
        if (!s->eof[i])
            uv_read_stop((uv_stream_t *)&s->pipe[i]);
    wait_then_resume(s);
}

static void timeout_cb(uv_timer_t *t);
static void kill_with(struct bbw_shell *s, const char *why);

static void logpoll_cb(uv_timer_t *t)
{
    struct bbw_shell *s = t->data;
    if (!s->dead && !s->cmd->abandoned)
        bbw_logfiles_poll(s->logfiles, false);
}

/*
 * max_lines (4.x): the line ends of what is read and sent ("\r\n", "\r" or "\n",
 * counted per read as Python's RunProcess counts them per chunk, on stdout and stderr
 * together); past the limit the child's stdout is closed and it is killed, once.
 */
static void count_lines(struct bbw_shell *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')))
            s->line_count++;
    if (s->line_count <= s->max_lines || s->killing || s->dead)
        return;
    if (!s->eof[1]) {
        s->eof[1] = true;
        close_handle(s, (uv_handle_t *)&s->pipe[1]);
    }
    bbw_cmd_update(s->cmd, "failure_reason", pb_text("max_lines_failure"));
    char *why = xasprintf("command exceeds max lines: %ld/%ld written/allowed running %s",
                          s->line_count, s->max_lines, s->argv_repr);
    kill_with(s, why);
    free(why);
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct bbw_shell *s = st->data;
    int i = st == (uv_stream_t *)&s->pipe[1] ? 1 : 2;
    if (n == 0)
        return;
    if (n < 0) {
        s->eof[i] = true;
        uv_read_stop(st);
        maybe_done(s);
        return;
    }
    if (s->timeout_s > 0 && !s->killing)
        uv_timer_start(&s->timeout, timeout_cb, (uint64_t)s->timeout_s * 1000, 0);
    if (s->want[i] && s->max_lines >= 0)
        count_lines(s, b->base, (size_t)n);
    if (s->want[i])
        bbw_cmd_output(s->cmd, i == 1 ? BBW_STDOUT : BBW_STDERR, b->base, (size_t)n);
    if (!s->paused && bbw_cmd_congested(s->cmd))
        pause_output(s);
}

/* -------------------------------------------------------------- kills */

static void kill_group(struct bbw_shell *s, int sig)
{
    if (s->exited)
        return;
    if (kill(-s->proc.pid, sig) < 0)
        kill(s->proc.pid, sig);
}

static void grace_cb(uv_timer_t *t)
{
    struct bbw_shell *s = t->data;
    if (s->dead)
        return;
    s->dead = true;
    report_end(s, true);
}

static void second_signal_cb(uv_timer_t *t)
{
    struct bbw_shell *s = t->data;
    kill_group(s, s->interrupt_signal);
    uv_timer_start(&s->kill, grace_cb, KILL_GRACE_MS, 0);
}

/* Python's RunProcess.kill: say why, signal the group, give up after a grace time. */
static void kill_with(struct bbw_shell *s, const char *why)
{
    if (s->killing || s->dead)
        return;
    s->killing = true;
    uv_timer_stop(&s->timeout);
    uv_timer_stop(&s->max_time);
    char *text = xasprintf("\n%s, attempting to kill\n", why);
    header(s, text);
    free(text);
    if (s->sigterm_time > 0 && s->interrupt_signal != SIGTERM) {
        kill_group(s, SIGTERM);
        uv_timer_start(&s->kill, second_signal_cb, (uint64_t)(s->sigterm_time * 1000), 0);
    } else {
        kill_group(s, s->interrupt_signal);
        uv_timer_start(&s->kill, grace_cb, KILL_GRACE_MS, 0);
    }
}

static void timeout_cb(uv_timer_t *t)
{
    struct bbw_shell *s = t->data;
    bbw_cmd_update(s->cmd, "failure_reason", pb_text("timeout_without_output"));
    char *why = xasprintf("command timed out: %ld seconds without output running %s", s->timeout_s,
                          s->argv_repr);
    kill_with(s, why);
    free(why);
}

static void max_time_cb(uv_timer_t *t)
{
    struct bbw_shell *s = t->data;
    bbw_cmd_update(s->cmd, "failure_reason", pb_text("timeout"));
    char *why =
        xasprintf("command timed out: %ld seconds elapsed running %s", s->max_time_s, s->argv_repr);
    kill_with(s, why);
    free(why);
}

void bbw_shell_interrupt(struct bbw_shell *s)
{
    kill_with(s, "command interrupted");
}

void bbw_shell_abandon(struct bbw_shell *s)
{
    s->killing = true;
    kill_group(s, SIGKILL);
    /* the pipes go now; the process handle stays until the child is reaped */
    for (int i = 0; i < 3; i++) {
        s->eof[i] = true;
        close_handle(s, (uv_handle_t *)&s->pipe[i]);
    }
    maybe_done(s);
}

/* ------------------------------------------------------------- start */

static void stdin_closed_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    struct bbw_shell *s = req->data;
    close_handle(s, (uv_handle_t *)&s->pipe[0]);
}

static void stdin_written_cb(uv_write_t *req, int status)
{
    struct bbw_shell *s = req->data;
    if (status < 0 || uv_is_closing((uv_handle_t *)&s->pipe[0]) ||
        uv_shutdown(&s->stdin_shut, (uv_stream_t *)&s->pipe[0], stdin_closed_cb) < 0)
        close_handle(s, (uv_handle_t *)&s->pipe[0]);
}

static struct bbw_shell *shell_new(struct bbw_cmd *c, const struct bbw_shell_opts *o)
{
    struct bbw_shell *s = xcalloc(1, sizeof(*s));
    uv_loop_t *loop = c->w->loop;
    s->cmd = c;
    c->holds++;
    c->shell = s;
    for (int i = 0; i < 3; i++) {
        uv_pipe_init(loop, &s->pipe[i], 0);
        s->pipe[i].data = s;
    }
    uv_timer_init(loop, &s->timeout);
    uv_timer_init(loop, &s->max_time);
    uv_timer_init(loop, &s->kill);
    uv_timer_init(loop, &s->poll);
    uv_timer_init(loop, &s->logpoll);
    s->timeout.data = s->max_time.data = s->kill.data = s->poll.data = s->proc.data = s;
    s->logpoll.data = s;
    s->open = 8; /* three pipes, five timers; +1 for the process once uv_spawn is called */
    s->timeout_s = o->timeout;
    s->max_time_s = o->max_time;
    s->max_lines = o->max_lines;
    s->sigterm_time = o->sigterm_time;
    s->interrupt_signal = o->interrupt_signal;
    s->want[1] = o->want_stdout;
    s->want[2] = o->want_stderr;
    return s;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char *p = xstrdup(path);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = 0;
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            free(p);
            return -errno;
        }
        *q = '/';
    }
    int rc = mkdir(p, 0777) < 0 && errno != EEXIST ? -errno : 0;
    free(p);
    return rc;
}

/*
 * A pseudo-terminal for usePTY (POSIX posix_openpt): output post-processing is
 * turned off so that "\n" stays "\n" (no "\r\n" in the logs).  0, or -errno.
 */
static int open_pty(int *master, int *slave)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0)
        return -errno;
    const char *name = grantpt(m) == 0 && unlockpt(m) == 0 ? ptsname(m) : NULL;
    int sl = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    if (sl < 0) {
        int err = errno ? errno : EIO;
        close(m);
        return -err;
    }
    struct termios t;
    if (tcgetattr(sl, &t) == 0) {
        t.c_oflag &= ~(tcflag_t)OPOST;
        t.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(sl, TCSANOW, &t);
    }
    *master = m;
    *slave = sl;
    return 0;
}

/* The process could not start: stderr says why, complete carries a failure, no rc. */
static void spawn_failed(struct bbw_shell *s, const char *what, const char *detail)
{
    char *text = xasprintf("%s: %s\n", what, detail);
    bbw_cmd_output(s->cmd, BBW_STDERR, text, strlen(text));
    bbw_cmd_finish(s->cmd, pb_failure_new("builtins.RuntimeError", text, pb_parents_runtime_error));
    free(text);
    s->dead = true;
    close_all(s);
}

void bbw_shell_run(struct bbw_cmd *c, const struct bbw_shell_opts *o)
{
    struct bbw_shell *s = shell_new(c, o);
    char **run = NULL, **show = NULL, **env = NULL, *cause = NULL;
    if (command_argv(o->command, &run, &show, &cause) < 0 ||
        child_env(o->env, o->workdir, &env, &cause) < 0) {
        free_strv(run);
        free_strv(show);
        spawn_failed(s, "cannot run the command", cause);
        free(cause);
        return;
    }
    struct buf b;
    buf_init(&b, 0);
    buf_addc(&b, '[');
    for (size_t i = 0; show[i]; i++) {
        if (i)
            buf_addstr(&b, ", ");
        bytes_repr(&b, show[i]);
    }
    buf_addc(&b, ']');
    s->argv_repr = buf_take(&b);
    if (o->header)
        send_header(s, show, o, env);
    int rc = make_dirs(o->workdir);
    s->logfiles = bbw_logfiles_new(c, o->logfiles, o->workdir);
    uv_stdio_container_t stdio[3];
    stdio[0].flags = o->initial_stdin ? UV_CREATE_PIPE | UV_READABLE_PIPE : UV_IGNORE;
    stdio[0].data.stream = (uv_stream_t *)&s->pipe[0];
    for (int i = 1; i < 3; i++) {
        stdio[i].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[i].data.stream = (uv_stream_t *)&s->pipe[i];
    }
    int pty_master = -1, pty_slave = -1;
    if (rc == 0 && o->use_pty && (rc = open_pty(&pty_master, &pty_slave)) == 0) {
        for (int i = 0; i < 3; i++) {
            stdio[i].flags = UV_INHERIT_FD;
            stdio[i].data.fd = pty_slave;
        }
    }
    uv_process_options_t po = {.exit_cb = exit_cb,
                               .file = run[0],
                               .args = run,
                               .env = env,
                               .cwd = o->workdir,
                               .flags = UV_PROCESS_DETACHED,
                               .stdio_count = 3,
                               .stdio = stdio};
    if (rc == 0) {
        s->spawned = true;
        s->open++;
        rc = uv_spawn(c->w->loop, &s->proc, &po);
        s->proc.data = s;
    }
    if (pty_slave >= 0)
        close(pty_slave); /* the child has it; the master side reads all it writes */
    if (pty_master >= 0) {
        s->eof[2] = true; /* stderr goes to the terminal too */
        if (rc < 0 || uv_pipe_open(&s->pipe[1], pty_master) < 0) {
            close(pty_master);
            s->eof[1] = true;
        }
    }
    if (rc < 0) {
        char *what = xasprintf("cannot start %s in %s", run[0], o->workdir);
        spawn_failed(s, what, uv_strerror(rc));
        free(what);
    } else {
        log_info("command %s: started process %d", c->id, s->proc.pid);
        for (int i = 1; i < 3; i++)
            if (!s->eof[i])
                uv_read_start((uv_stream_t *)&s->pipe[i], alloc_cb, read_cb);
        if (o->initial_stdin) {
            s->stdin_data = xmalloc(o->initial_stdin_len + 1);
            memcpy(s->stdin_data, o->initial_stdin, o->initial_stdin_len);
            uv_buf_t ib = uv_buf_init(s->stdin_data, (unsigned)o->initial_stdin_len);
            s->stdin_req.data = s->stdin_shut.data = s;
            if (uv_write(&s->stdin_req, (uv_stream_t *)&s->pipe[0], &ib, 1, stdin_written_cb) < 0)
                close_handle(s, (uv_handle_t *)&s->pipe[0]);
        } else {
            close_handle(s, (uv_handle_t *)&s->pipe[0]);
        }
        if (s->logfiles)
            uv_timer_start(&s->logpoll, logpoll_cb, BBW_LOGFILE_POLL_MS, BBW_LOGFILE_POLL_MS);
        if (s->timeout_s > 0)
            uv_timer_start(&s->timeout, timeout_cb, (uint64_t)s->timeout_s * 1000, 0);
        if (s->max_time_s > 0)
            uv_timer_start(&s->max_time, max_time_cb, (uint64_t)s->max_time_s * 1000, 0);
    }
    free_strv(run);
    free_strv(show);
    free_strv(env);
}
