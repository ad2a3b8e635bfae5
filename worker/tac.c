/*
 * buildbot.tac, read and written as buildbot-worker's create-worker does.
 *
 * The tac is a Python file; bbworker does not run Python.  It reads the
 * module-level assignments of literals that create-worker writes (and that
 * owners edit: a new password, another master, a keepalive), in file order,
 * the last one winning as in Python.  A known name given anything but a
 * literal is refused with FILE:LINE, so an owner's computed setting is never
 * silently replaced by a default.  Indented lines (the relocatable `if`
 * block) and every other statement are left alone.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "worker.h"

/* One Python literal: a string, an integer, None, True or False. */
enum lit_kind { LIT_STR, LIT_INT, LIT_NONE, LIT_BOOL };

struct lit {
    enum lit_kind kind;
    char *s;
    long long i;
};

void bbw_tac_defaults(struct bbw_tac *t)
{
    memset(t, 0, sizeof(*t));
    t->port = 9989;
    t->keepalive = 600;
    t->umask = -1;
    t->maxdelay = 300;
    t->maxretries = -1;
    t->rotate_length = 10000000;
    t->max_rotated_files = 10;
    t->log_rotation = true;
}

void bbw_tac_free(struct bbw_tac *t)
{
    free(t->basedir);
    free(t->host);
    free(t->name);
    free(t->passwd);
    free(t->allow_shutdown);
    free(t->proxy_connection_string);
    free(t->connection_string);
    free(t->protocol);
    bbw_endpoint_free(&t->master);
    bbw_endpoint_free(&t->proxy);
    memset(t, 0, sizeof(*t));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A quoted string starting at *p (after any r prefix); *p moves past it. */
static int parse_string(const char **p, const char *end, bool raw, struct buf *out)
{
    char q = **p;
    const char *s = *p + 1;
    while (s < end && *s != q) {
        if (*s == '\\' && !raw && s + 1 < end) {
            s++;
            char c = *s++;
            switch (c) {
            case 'n':
                buf_addc(out, '\n');
                break;
            case 't':
                buf_addc(out, '\t');
                break;
            case 'r':
                buf_addc(out, '\r');
                break;
            case '0':
                buf_addc(out, '\0');
                break;
            case 'x':
                if (s + 2 > end || hexval(s[0]) < 0 || hexval(s[1]) < 0)
                    return -1;
                buf_addc(out, (char)(hexval(s[0]) * 16 + hexval(s[1])));
                s += 2;
                break;
            case '\\':
            case '\'':
            case '"':
                buf_addc(out, c);
                break;
            default:
                buf_addc(out, '\\');
                buf_addc(out, c);
            }
            continue;
        }
        if (*s == '\\' && raw && s + 1 < end && s[1] == q) {
            buf_add(out, s, 2);
            s += 2;
            continue;
        }
        buf_addc(out, *s++);
    }
    if (s >= end)
        return -1;
    *p = s + 1;
    return 0;
}

static bool word_at(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 &&
           (p + n == end || !(isalnum((unsigned char)p[n]) || p[n] == '_'));
}

static int parse_int(const char **p, const char *end, long long *out)
{
    const char *s = *p;
    bool neg = false;
    if (s < end && (*s == '-' || *s == '+'))
        neg = *s++ == '-';
    int base = 10;
    if (end - s > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O' || s[1] == 'x' || s[1] == 'X')) {
        base = tolower((unsigned char)s[1]) == 'o' ? 8 : 16;
        s += 2;
    }
    long long v = 0;
    const char *start = s;
    for (; s < end && (isalnum((unsigned char)*s) || *s == '_'); s++) {
        if (*s == '_')
            continue;
        int d = hexval(*s);
        if (d < 0 || d >= base || v > (1LL << 50))
            return -1;
        v = v * base + d;
    }
    if (s == start || (base == 10 && *start == '0' && s - start > 1 && v != 0))
        return -1; /* "022" is a syntax error in Python 3 */
    *out = neg ? -v : v;
    *p = s;
    return 0;
}

/* The literal that is the whole of [p, end) apart from blanks and a comment. */
static int parse_literal(const char *p, const char *end, struct lit *out)
{
    memset(out, 0, sizeof(*out));
    bool raw = false;
    if (p < end && (*p == 'r' || *p == 'R') && p + 1 < end && (p[1] == '\'' || p[1] == '"')) {
        raw = true;
        p++;
    }
    if (p < end && (*p == '\'' || *p == '"')) {
        if (end - p >= 3 && p[1] == p[0] && p[2] == p[0])
            return -1; /* triple quotes: not written by create-worker */
        struct buf b;
        buf_init(&b, BBW_TAC_MAX);
        if (parse_string(&p, end, raw, &b) < 0) {
            buf_free(&b);
            return -1;
        }
        out->kind = LIT_STR;
        out->s = buf_take(&b);
    } else if (word_at(p, end, "None")) {
        out->kind = LIT_NONE;
        p += 4;
    } else if (word_at(p, end, "True") || word_at(p, end, "False")) {
        out->kind = LIT_BOOL;
        out->i = *p == 'T';
        p += *p == 'T' ? 4 : 5;
    } else if (parse_int(&p, end, &out->i) == 0) {
        out->kind = LIT_INT;
    } else {
        return -1;
    }
    while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
        p++;
    if (p < end && *p != '#') {
        free(out->s);
        out->s = NULL;
        return -1;
    }
    return 0;
}

/* Settings kinds. */
enum setting { S_STR, S_STR_NONE, S_INT, S_INT_NONE, S_BOOL };

struct key {
    const char *name;
    enum setting kind;
    size_t off; /* offset of the field in struct bbw_tac */
    long long min, max;
};

#define F(field) offsetof(struct bbw_tac, field)
static const struct key keys[] = {
    {"basedir", S_STR, F(basedir), 0, 0},
    {"buildmaster_host", S_STR_NONE, F(host), 0, 0},
    {"port", S_INT_NONE, F(port), 1, 65535},
    {"workername", S_STR, F(name), 0, 0},
    {"passwd", S_STR, F(passwd), 0, 0},
    {"keepalive", S_INT_NONE, F(keepalive), 0, 1L << 30},
    {"umask", S_INT_NONE, F(umask), 0, 0777},
    {"maxdelay", S_INT, F(maxdelay), 0, 1L << 30},
    {"numcpus", S_INT_NONE, F(numcpus), 1, 1 << 20},
    {"allow_shutdown", S_STR_NONE, F(allow_shutdown), 0, 0},
    {"maxretries", S_INT_NONE, F(maxretries), 0, 1L << 30},
    {"use_tls", S_BOOL, F(use_tls), 0, 0},
    {"delete_leftover_dirs", S_BOOL, F(delete_leftover_dirs), 0, 0},
    {"proxy_connection_string", S_STR_NONE, F(proxy_connection_string), 0, 0},
    {"connection_string", S_STR_NONE, F(connection_string), 0, 0},
    {"protocol", S_STR, F(protocol), 0, 0},
    {"rotateLength", S_INT, F(rotate_length), 0, 1LL << 40},
    {"maxRotatedFiles", S_INT_NONE, F(max_rotated_files), 0, 1 << 20},
};
#undef F

/* Which fields are int-sized (the others that hold numbers are long). */
static bool is_int_field(size_t off)
{
    return off == offsetof(struct bbw_tac, port) || off == offsetof(struct bbw_tac, umask) ||
           off == offsetof(struct bbw_tac, numcpus) ||
           off == offsetof(struct bbw_tac, max_rotated_files);
}

/* The value None stands for, per field. */
static long long none_value(size_t off)
{
    if (off == offsetof(struct bbw_tac, keepalive) || off == offsetof(struct bbw_tac, numcpus) ||
        off == offsetof(struct bbw_tac, port))
        return 0;
    return -1;
}

static int apply(struct bbw_tac *t, const struct key *k, struct lit *v, char **why)
{
    char *base = (char *)t;
    switch (k->kind) {
    case S_STR:
    case S_STR_NONE: {
        char **f = (char **)(base + k->off);
        if (v->kind == LIT_NONE && k->kind == S_STR_NONE) {
            free(*f);
            *f = NULL;
            return 0;
        }
        if (v->kind != LIT_STR)
            return util_cause(why, "a string is needed");
        if (strlen(v->s) == 0 && k->kind == S_STR && strcmp(k->name, "passwd") != 0)
            return util_cause(why, "it must not be empty");
        free(*f);
        *f = v->s;
        v->s = NULL;
        return 0;
    }
    case S_BOOL:
        if (v->kind != LIT_BOOL && v->kind != LIT_INT && v->kind != LIT_NONE)
            return util_cause(why, "True, False, 0 or 1 is needed");
        *(bool *)(base + k->off) = v->kind != LIT_NONE && v->i != 0;
        return 0;
    case S_INT:
    case S_INT_NONE: {
        long long n;
        if (v->kind == LIT_NONE && k->kind == S_INT_NONE)
            n = none_value(k->off);
        else if (v->kind == LIT_INT && v->i >= k->min && v->i <= k->max)
            n = v->i;
        else if (v->kind == LIT_INT)
            return util_cause(why, "%lld is out of range (%lld..%lld)", v->i, k->min, k->max);
        else
            return util_cause(why, k->kind == S_INT_NONE ? "a number or None is needed"
                                                         : "a number is needed");
        if (is_int_field(k->off))
            *(int *)(base + k->off) = (int)n;
        else
            *(long *)(base + k->off) = (long)n;
        return 0;
    }
    }
    return -1;
}

/* An endpoint string the tac assigns: one bbworker can connect with, or why not. */
static int check_endpoint(const struct key *k, const char *value, char **why)
{
    struct bbw_endpoint ep;
    if (bbw_endpoint_parse(value, &ep, why) < 0)
        return -1;
    bool tls = ep.tls;
    bbw_endpoint_free(&ep);
    if (tls && strcmp(k->name, "proxy_connection_string") == 0)
        return util_cause(why, "the proxy is reached with tcp: (use_tls is for the master)");
    return 0;
}

/*
 * One line: an assignment `NAME = LITERAL` at the top level, or nothing to
 * read.  *assigned is the setting the line assigned, if any.
 */
static int parse_line(struct bbw_tac *t, const char *p, const char *end, const char *file,
                      int lineno, const struct key **assigned, char **cause)
{
    if (p == end || !(isalpha((unsigned char)*p) || *p == '_'))
        return 0;
    const char *n = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    size_t nlen = (size_t)(p - n);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p != '=' || (p + 1 < end && p[1] == '='))
        return 0;
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const struct key *k = NULL;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i].name) == nlen && memcmp(keys[i].name, n, nlen) == 0)
            k = &keys[i];
    if (!k)
        return 0;
    struct lit v;
    if (parse_literal(p, end, &v) < 0) {
        char shown[120];
        return util_cause(cause,
                          "%s:%d: %s is not a literal bbworker can read (%s); write the "
                          "value itself, quoted if it is a string",
                          file, lineno, k->name,
                          util_escape(shown, sizeof(shown), p, (size_t)(end - p)));
    }
    char *why = NULL;
    int rc = apply(t, k, &v, &why);
    free(v.s);
    char **str = (char **)((char *)t + k->off);
    if (rc == 0 && (k->off == offsetof(struct bbw_tac, connection_string) ||
                    k->off == offsetof(struct bbw_tac, proxy_connection_string)))
        rc = *str != NULL ? check_endpoint(k, *str, &why) : 0;
    *assigned = k;
    if (rc < 0) {
        util_cause(cause, "%s:%d: %s: %s", file, lineno, k->name, why);
        free(why);
        return -1;
    }
    return 0;
}

/*
 * Where the settings say the master is, as buildbot-worker's Worker builds its
 * endpoint: connection_string when set (buildmaster_host and port None), else
 * tcp: or tls: (use_tls) to buildmaster_host and port; through the proxy when
 * proxy_connection_string is set.  `conn_line` is connection_string's line.
 */
static int resolve(struct bbw_tac *t, const char *file, int conn_line, char **cause)
{
    char *why = NULL;
    if (t->connection_string) {
        if (t->host || t->port)
            return util_cause(cause,
                              "%s:%d: connection_string is set, so buildmaster_host and port "
                              "must be None",
                              file, conn_line);
        if (t->proxy_connection_string)
            return util_cause(cause,
                              "%s:%d: connection_string and proxy_connection_string are both "
                              "set; for a proxy, give buildmaster_host and port instead",
                              file, conn_line);
        if (bbw_endpoint_parse(t->connection_string, &t->master, &why) < 0)
            abort(); /* checked on its line */
        return 0;
    }
    if (!t->host || !t->port)
        return util_cause(cause, "%s: %s is not set (nor connection_string)", file,
                          !t->host ? "buildmaster_host" : "port");
    t->master = (struct bbw_endpoint){.tls = t->use_tls,
                                      .host = xstrdup(t->host),
                                      .port = t->port,
                                      .timeout = BBW_CONNECT_TIMEOUT};
    if (t->proxy_connection_string &&
        bbw_endpoint_parse(t->proxy_connection_string, &t->proxy, &why) < 0)
        abort(); /* checked on its line */
    return 0;
}

int bbw_tac_parse(struct bbw_tac *t, const char *text, size_t len, const char *file, char **cause)
{
    const char *p = text, *end = text + len;
    int lineno = 0, conn_line = 0;
    bool saw_worker = false;
    t->log_rotation = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *e = le;
        if (e > p && e[-1] == '\r')
            e--;
        const struct key *k = NULL;
        if (parse_line(t, p, e, file, lineno, &k, cause) < 0)
            return -1;
        if (k && k->off == offsetof(struct bbw_tac, connection_string))
            conn_line = lineno;
        if (memmem(p, (size_t)(e - p), "LogFile.fromFullPath", 20))
            t->log_rotation = true;
        if (memmem(p, (size_t)(e - p), "Worker(", 7))
            saw_worker = true;
        p = nl ? nl + 1 : end;
    }
    if (!saw_worker)
        return util_cause(cause, "%s: not a worker's buildbot.tac (no Worker(...) in it)", file);
    if (!t->name || !t->passwd)
        return util_cause(cause, "%s: %s is not set", file, !t->name ? "workername" : "passwd");
    if (t->protocol && strcmp(t->protocol, "pb") != 0)
        return util_cause(cause, "%s: protocol '%s' is not supported (only 'pb')", file,
                          t->protocol);
    if (t->allow_shutdown && strcmp(t->allow_shutdown, "signal") != 0 &&
        strcmp(t->allow_shutdown, "file") != 0)
        return util_cause(cause, "%s: allow_shutdown must be None, 'signal' or 'file'", file);
    return resolve(t, file, conn_line, cause);
}

int bbw_tac_load(struct bbw_tac *t, const char *dir, char **cause)
{
    char *path = xasprintf("%s/buildbot.tac", dir);
    size_t len;
    char *text = util_read_file(path, BBW_TAC_MAX, &len, cause);
    int rc = text ? bbw_tac_parse(t, text, len, path, cause) : -1;
    free(text);
    free(path);
    return rc;
}

char *bbw_py_repr(const char *s)
{
    bool sq = strchr(s, '\'') != NULL, dq = strchr(s, '"') != NULL;
    char q = sq && !dq ? '"' : '\'';
    struct buf b;
    buf_init(&b, 0);
    buf_addc(&b, q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == (unsigned char)q)
            buf_printf(&b, "\\%c", *p);
        else if (*p == '\n')
            buf_addstr(&b, "\\n");
        else if (*p == '\r')
            buf_addstr(&b, "\\r");
        else if (*p == '\t')
            buf_addstr(&b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(&b, "\\x%02x", *p);
        else
            buf_addc(&b, (char)*p);
    }
    buf_addc(&b, q);
    return buf_take(&b);
}

static void add_repr(struct buf *b, const char *prefix, const char *s)
{
    char *r = bbw_py_repr(s);
    buf_printf(b, "%s%s\n", prefix, r);
    free(r);
}

static void add_num_or_none(struct buf *b, const char *prefix, long v, bool none, bool octal)
{
    if (none)
        buf_printf(b, "%sNone\n", prefix);
    else
        buf_printf(b, octal ? "%s0o%lo\n" : "%s%ld\n", prefix, v);
}

char *bbw_tac_render(const struct bbw_tac *t)
{
    struct buf b;
    buf_init(&b, 0);
    buf_addstr(&b, "\nimport os\n\nfrom buildbot_worker.bot import Worker\n"
                   "from twisted.application import service\n\n");
    add_repr(&b, "basedir = ", t->basedir);
    buf_printf(&b, "rotateLength = %ld\n", t->rotate_length);
    add_num_or_none(&b, "maxRotatedFiles = ", t->max_rotated_files, t->max_rotated_files < 0,
                    false);
    buf_addstr(&b, "\n# if this is a relocatable tac file, get the directory containing the TAC\n"
                   "if basedir == '.':\n    import os.path\n"
                   "    basedir = os.path.abspath(os.path.dirname(__file__))\n\n"
                   "# note: this line is matched against to check that this is a worker\n"
                   "# directory; do not edit it.\n"
                   "application = service.Application('buildbot-worker')\n");
    if (t->log_rotation)
        buf_addstr(&b, "\nfrom twisted.python.logfile import LogFile\n"
                       "from twisted.python.log import ILogObserver, FileLogObserver\n"
                       "logfile = LogFile.fromFullPath(\n"
                       "    os.path.join(basedir, \"twistd.log\"), rotateLength=rotateLength,\n"
                       "    maxRotatedFiles=maxRotatedFiles)\n"
                       "application.setComponent(ILogObserver, FileLogObserver(logfile).emit)\n");
    buf_addstr(&b, "\n");
    if (t->connection_string) { /* as buildbot-worker 3.10 and later write it */
        add_repr(&b, "buildmaster_host = None  # ", t->host);
        buf_printf(&b, "port = None  # %d\n", t->port);
        add_repr(&b, "connection_string = ", t->connection_string);
    } else {
        add_repr(&b, "buildmaster_host = ", t->host);
        buf_printf(&b, "port = %d\n", t->port);
    }
    add_repr(&b, "workername = ", t->name);
    add_repr(&b, "passwd = ", t->passwd);
    buf_printf(&b, "keepalive = %ld\n", t->keepalive);
    add_num_or_none(&b, "umask = ", t->umask, t->umask < 0, true);
    buf_printf(&b, "maxdelay = %ld\n", t->maxdelay);
    add_num_or_none(&b, "numcpus = ", t->numcpus, t->numcpus <= 0, false);
    if (t->allow_shutdown)
        add_repr(&b, "allow_shutdown = ", t->allow_shutdown);
    else
        buf_addstr(&b, "allow_shutdown = None\n");
    add_num_or_none(&b, "maxretries = ", t->maxretries, t->maxretries < 0, false);
    buf_printf(&b, "use_tls = %d\n", t->use_tls ? 1 : 0);
    buf_printf(&b, "delete_leftover_dirs = %d\n", t->delete_leftover_dirs ? 1 : 0);
    if (t->proxy_connection_string)
        add_repr(&b, "proxy_connection_string = ", t->proxy_connection_string);
    else
        buf_addstr(&b, "proxy_connection_string = None\n");
    add_repr(&b, "protocol = ", t->protocol ? t->protocol : "pb");
    buf_addstr(&b, "\ns = Worker(buildmaster_host, port, workername, passwd, basedir,\n"
                   "           keepalive, umask=umask, maxdelay=maxdelay,\n"
                   "           numcpus=numcpus, allow_shutdown=allow_shutdown,\n"
                   "           maxRetries=maxretries, protocol=protocol, useTls=use_tls,\n"
                   "           delete_leftover_dirs=delete_leftover_dirs,\n");
    if (t->connection_string)
        buf_addstr(&b, "           connection_string=connection_string,\n");
    buf_addstr(&b, "           proxy_connection_string=proxy_connection_string)\n"
                   "s.setServiceParent(application)\n");
    return buf_take(&b);
}
