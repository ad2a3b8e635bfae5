/*
 * endpoint.c: Twisted's client endpoint strings, as buildbot.tac's
 * connection_string and proxy_connection_string give them.
 *
 * Twisted splits "type:arg:key=value:..." at colons; the first "=" of a
 * part separates a key from its value (a value may hold more "="), and a
 * backslash takes the next character as it is ("host=\:\:1").  bbworker
 * connects the way the endpoint says or not at all: a type or a key it does
 * not implement is refused with the reason, never ignored, so a worker never
 * makes a weaker connection than its tac asks for.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/util.h"
#include "worker.h"

#define MAX_PARTS 32

struct part {
    char *key; /* NULL for a positional argument */
    char *value;
};

struct parts {
    struct part p[MAX_PARTS];
    size_t n;
};

static void parts_free(struct parts *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->p[i].key);
        free(ps->p[i].value);
    }
    ps->n = 0;
}

/* Twisted's _tokenize and _parse: the parts of `s` in order. */
static int split(const char *s, struct parts *ps, char **cause)
{
    struct buf cur, key;
    buf_init(&cur, BBW_ENDPOINT_MAX);
    buf_init(&key, BBW_ENDPOINT_MAX);
    bool has_key = false;
    int rc = 0;
    memset(ps, 0, sizeof(*ps));
    for (const char *p = s;; p++) {
        if (*p == ':' || *p == '\0') {
            if (ps->n == MAX_PARTS) {
                rc = util_cause(cause, "more than %d parts", MAX_PARTS);
                break;
            }
            struct part *part = &ps->p[ps->n++];
            part->key = has_key ? buf_take(&key) : NULL;
            part->value = buf_take(&cur);
            buf_init(&cur, BBW_ENDPOINT_MAX);
            buf_init(&key, BBW_ENDPOINT_MAX);
            has_key = false;
            if (*p == '\0')
                break;
        } else if (*p == '=' && !has_key) {
            buf_add(&key, cur.data ? cur.data : "", cur.len);
            buf_free(&cur);
            buf_init(&cur, BBW_ENDPOINT_MAX);
            has_key = true;
        } else if (*p == '\\') {
            if (p[1] == '\0') {
                rc = util_cause(cause, "it ends with a lone backslash");
                break;
            }
            buf_addc(&cur, *++p);
        } else {
            buf_addc(&cur, *p);
        }
    }
    buf_free(&cur);
    buf_free(&key);
    if (rc < 0)
        parts_free(ps);
    return rc;
}

void bbw_endpoint_free(struct bbw_endpoint *ep)
{
    free(ep->host);
    free(ep->bind);
    free(ep->trust_roots);
    memset(ep, 0, sizeof(*ep));
}

static int number(const char *what, const char *v, long min, long max, long *out, char **cause)
{
    if (util_parse_long(v, min, max, out) < 0)
        return util_cause(cause, "%s '%s' is not a number from %ld to %ld", what, v, min, max);
    return 0;
}

/* One key=value of a tcp: or tls: endpoint. */
static int keyword(struct bbw_endpoint *ep, const char *type, const char *k, const char *v,
                   char **cause)
{
    long n;
    if (strcmp(k, "host") == 0) {
        free(ep->host);
        ep->host = xstrdup(v);
    } else if (strcmp(k, "port") == 0) {
        if (number("port", v, 1, 65535, &n, cause) < 0)
            return -1;
        ep->port = (int)n;
    } else if (strcmp(k, "timeout") == 0) {
        if (number("timeout", v, 1, BBW_TIMEOUT_MAX, &n, cause) < 0)
            return -1;
        ep->timeout = n;
    } else if (strcmp(k, "bindAddress") == 0) {
        free(ep->bind);
        ep->bind = xstrdup(v);
    } else if (ep->tls && strcmp(k, "trustRoots") == 0) {
        free(ep->trust_roots);
        ep->trust_roots = xstrdup(v);
    } else if (ep->tls && (strcmp(k, "certificate") == 0 || strcmp(k, "privateKey") == 0 ||
                           strcmp(k, "endpoint") == 0)) {
        return util_cause(cause, "tls: %s is not supported by bbworker", k);
    } else {
        return util_cause(cause, "unknown key '%s' for a %s: endpoint (known: %s)", k, type,
                          ep->tls ? "host, port, timeout, bindAddress, trustRoots"
                                  : "host, port, timeout, bindAddress");
    }
    return 0;
}

/* The positional arguments after the type: host then port, as Twisted's parsers take them. */
static int positional(struct bbw_endpoint *ep, const char *type, const struct parts *ps,
                      char **cause)
{
    size_t nargs = 0;
    bool host_kw = false;
    for (size_t i = 1; i < ps->n; i++) {
        if (ps->p[i].key == NULL)
            nargs++;
        else if (strcmp(ps->p[i].key, "host") == 0)
            host_kw = true;
    }
    if (nargs > 2)
        return util_cause(cause, "%s: takes at most 2 arguments without a key (host, port)", type);
    bool port_next = nargs == 1 && host_kw && !ep->tls; /* Twisted's tcp: "host=H:P" */
    for (size_t i = 1; i < ps->n; i++) {
        if (ps->p[i].key != NULL)
            continue;
        if (port_next) {
            long n;
            if (number("port", ps->p[i].value, 1, 65535, &n, cause) < 0)
                return -1;
            ep->port = (int)n;
        } else {
            free(ep->host);
            ep->host = xstrdup(ps->p[i].value);
        }
        port_next = true;
    }
    return 0;
}

int bbw_endpoint_parse(const char *s, struct bbw_endpoint *out, char **cause)
{
    if (strlen(s) > BBW_ENDPOINT_MAX)
        return util_cause(cause, "longer than %d bytes", BBW_ENDPOINT_MAX);
    struct parts ps;
    if (split(s, &ps, cause) < 0)
        return -1;
    struct bbw_endpoint ep = {.timeout = BBW_CONNECT_TIMEOUT};
    const char *type = ps.p[0].key == NULL ? ps.p[0].value : "";
    int rc = 0;
    if (strcasecmp(type, "tcp") == 0 || strcasecmp(type, "tls") == 0) {
        ep.tls = strcasecmp(type, "tls") == 0;
        rc = positional(&ep, ep.tls ? "tls" : "tcp", &ps, cause);
        for (size_t i = 1; rc == 0 && i < ps.n; i++)
            if (ps.p[i].key != NULL)
                rc = keyword(&ep, ep.tls ? "tls" : "tcp", ps.p[i].key, ps.p[i].value, cause);
        if (rc == 0 && (ep.host == NULL || ep.host[0] == '\0'))
            rc = util_cause(cause, "no host (%s:host=HOST:port=PORT)", type);
        else if (rc == 0 && ep.port == 0)
            rc = util_cause(cause, "no port (%s:host=HOST:port=PORT)", type);
    } else if (type[0] == '\0') {
        rc = util_cause(cause, "no endpoint type (tcp: or tls:)");
    } else {
        char shown[64];
        rc = util_cause(cause, "endpoint type '%s' is not supported by bbworker (tcp: or tls:)",
                        util_escape_str(shown, sizeof(shown), type));
    }
    parts_free(&ps);
    if (rc < 0) {
        bbw_endpoint_free(&ep);
        return -1;
    }
    *out = ep;
    return 0;
}

long bbw_proxy_answer(const char *data, size_t len)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    const char *eol = memchr(data, '\r', len); /* the status line: "HTTP/1.1 200 ..." */
    const char *sp = memchr(data, ' ', (size_t)(eol - data));
    if (sp == NULL || eol - sp < 4 || memcmp(sp, " 200", 4) != 0 || (eol - sp > 4 && sp[4] != ' '))
        return -1;
    return (long)(end + 4 - data);
}
