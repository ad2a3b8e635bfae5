/*
 * bbmaster's message templates: a small language of its own standing in for
 * the Jinja templates of Buildbot's MessageFormatter (docs/internals/reporters.md,
 * "Templates").  Text is copied; `{{ path }}` and `{{ path or "text" }}` insert a
 * value of the context (a JSON object; a path is names joined by dots); `{% if %}`,
 * `{% elif %}`, `{% else %}`, `{% endif %}` choose on a path's truth or its
 * equality with a quoted text; `{% for x in path %}` ... `{% endfor %}` repeats
 * over a list; `{# ... #}` is a comment.  Anything else is refused when the
 * template is compiled, with its line, so that checkconfig can say FILE:LINE.
 * Whitespace is kept as written, but for one newline at the very end, which
 * is dropped (Jinja's defaults).  Sizes are
 * bounded: the template, the nesting and the output.
 */
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

enum node_kind { N_TEXT, N_VAR, N_IF, N_FOR };
enum cond_kind { C_TRUE, C_NOT, C_EQ, C_NE, C_ELSE };

struct node;
struct seq {
    struct node *v;
    size_t n, cap;
};
struct branch {
    enum cond_kind cond;
    char *path, *lit; /* lit: the quoted text of == and != */
    struct seq body;
};
struct node {
    enum node_kind kind;
    char *text; /* N_TEXT: the text; N_VAR: the path; N_FOR: the loop variable */
    size_t len;
    char *alt; /* N_VAR: the text after `or`; N_FOR: the list's path */
    struct branch *br;
    size_t n_br;
    struct seq body; /* N_FOR */
};
struct rep_tmpl {
    struct seq top;
};

struct parser {
    const char *s, *p;
    int depth;
    char *err;
};

static int line_at(const struct parser *ps, const char *at)
{
    int line = 1;
    for (const char *c = ps->s; c < at; c++)
        line += *c == '\n';
    return line;
}

static int fail(struct parser *ps, const char *at, const char *what)
{
    if (ps->err == NULL)
        ps->err = xasprintf("line %d: %s", line_at(ps, at), what);
    return -1;
}

static struct node *add(struct seq *q)
{
    q->v = xgrow(q->v, &q->cap, q->n + 1, sizeof *q->v);
    struct node *n = &q->v[q->n++];
    memset(n, 0, sizeof *n);
    return n;
}

/* The words of a tag's inside: names, dotted paths, operators, one quoted text. */
#define WORDS_MAX 6
struct words {
    char *w[WORDS_MAX];
    bool quoted[WORDS_MAX];
    int n;
};

static void words_free(struct words *w)
{
    for (int i = 0; i < w->n; i++)
        free(w->w[i]);
    w->n = 0;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

static int split(struct parser *ps, const char *at, const char *b, const char *e, struct words *w)
{
    w->n = 0;
    while (b < e) {
        if (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r') {
            b++;
            continue;
        }
        if (w->n == WORDS_MAX)
            return fail(ps, at, "too many words in a tag");
        const char *s = b;
        bool q = false;
        if (*b == '"' || *b == '\'') {
            char quote = *b++;
            s = b;
            while (b < e && *b != quote)
                b++;
            if (b == e)
                return fail(ps, at, "a quoted text is not closed");
            q = true;
        } else if (*b == '=' || *b == '!') {
            if (b + 1 >= e || b[1] != '=')
                return fail(ps, at, "only == and != compare");
            b += 2;
        } else if (is_name_char(*b)) {
            while (b < e && is_name_char(*b))
                b++;
        } else {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "'%c' is not part of bbmaster's template language (no filters, calls "
                     "or indexing: use a dotted path)",
                     *b);
            return fail(ps, at, msg);
        }
        w->quoted[w->n] = q;
        w->w[w->n++] = xasprintf("%.*s", (int)(b - s), s);
        if (q)
            b++;
    }
    return 0;
}

static bool is_path(const struct words *w, int i)
{
    if (i >= w->n || w->quoted[i])
        return false;
    const char *s = w->w[i];
    if (s[0] == '\0' || s[0] == '.' || s[strlen(s) - 1] == '.' || strstr(s, "..") != NULL)
        return false;
    return strcmp(s, "or") != 0 && strcmp(s, "not") != 0 && strcmp(s, "in") != 0 &&
           strcmp(s, "==") != 0 && strcmp(s, "!=") != 0;
}

static int parse_seq(struct parser *ps, struct seq *out, const char *const *ends, const char **end,
                     struct words *endw);

/* A condition from words[from..]: path, not path, path == "t", path != "t". */
static int cond(struct parser *ps, const char *at, struct words *w, int from, struct branch *br)
{
    int n = w->n - from;
    if (n == 1 && is_path(w, from)) {
        br->cond = C_TRUE;
        br->path = xstrdup(w->w[from]);
        return 0;
    }
    if (n == 2 && strcmp(w->w[from], "not") == 0 && !w->quoted[from] && is_path(w, from + 1)) {
        br->cond = C_NOT;
        br->path = xstrdup(w->w[from + 1]);
        return 0;
    }
    if (n == 3 && is_path(w, from) && !w->quoted[from + 1] && w->quoted[from + 2] &&
        (strcmp(w->w[from + 1], "==") == 0 || strcmp(w->w[from + 1], "!=") == 0)) {
        br->cond = w->w[from + 1][0] == '=' ? C_EQ : C_NE;
        br->path = xstrdup(w->w[from]);
        br->lit = xstrdup(w->w[from + 2]);
        return 0;
    }
    return fail(ps, at, "a condition is a path, 'not' path, or path == \"text\" (or !=)");
}

static int parse_if(struct parser *ps, const char *at, struct words *w, struct node *n)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    n->kind = N_IF;
    int from = 1;
    for (;;) {
        n->br = realloc(n->br, (n->n_br + 1) * sizeof *n->br);
        if (n->br == NULL)
            abort();
        struct branch *br = &n->br[n->n_br++];
        memset(br, 0, sizeof *br);
        if (from < 0)
            br->cond = C_ELSE;
        else if (cond(ps, at, w, from, br) < 0)
            return -1;
        const char *end;
        words_free(w);
        if (parse_seq(ps, &br->body, ends, &end, w) < 0)
            return -1;
        if (strcmp(end, "endif") == 0)
            return w->n == 1 ? 0 : fail(ps, at, "endif takes nothing");
        if (br->cond == C_ELSE)
            return fail(ps, at, "nothing may follow else but endif");
        if (strcmp(end, "else") == 0 && w->n != 1)
            return fail(ps, at, "else takes nothing");
        from = strcmp(end, "elif") == 0 ? 1 : -1;
    }
}

static int parse_for(struct parser *ps, const char *at, struct words *w, struct node *n)
{
    static const char *const ends[] = {"endfor", NULL};
    if (w->n != 4 || !is_path(w, 1) || strchr(w->w[1], '.') != NULL || strcmp(w->w[2], "in") != 0 ||
        !is_path(w, 3))
        return fail(ps, at, "a loop is {% for name in path %}");
    n->kind = N_FOR;
    n->text = xstrdup(w->w[1]);
    n->alt = xstrdup(w->w[3]);
    const char *end;
    words_free(w);
    if (parse_seq(ps, &n->body, ends, &end, w) < 0)
        return -1;
    return w->n == 1 ? 0 : fail(ps, at, "endfor takes nothing");
}

static int parse_var(struct parser *ps, const char *at, struct words *w, struct node *n)
{
    n->kind = N_VAR;
    if (w->n == 1 && is_path(w, 0)) {
        n->text = xstrdup(w->w[0]);
        return 0;
    }
    if (w->n == 3 && is_path(w, 0) && strcmp(w->w[1], "or") == 0 && w->quoted[2]) {
        n->text = xstrdup(w->w[0]);
        n->alt = xstrdup(w->w[2]);
        return 0;
    }
    return fail(ps, at, "{{ }} holds a path, or a path or \"text\"");
}

/* A tag at ps->p ('{{' or '{%'); *is_end is set to the word when it is one of `ends`. */
static int parse_tag(struct parser *ps, struct seq *out, const char *const *ends, const char **end,
                     struct words *endw)
{
    const char *at = ps->p;
    char kind = at[1];
    const char *close = strstr(at + 2, kind == '{' ? "}}" : "%}");
    if (close == NULL)
        return fail(ps, at, kind == '{' ? "'{{' is not closed" : "'{%' is not closed");
    struct words w = {0};
    if (split(ps, at, at + 2, close, &w) < 0) {
        words_free(&w);
        return -1;
    }
    ps->p = close + 2;
    int rc = 0;
    if (kind == '{') {
        rc = parse_var(ps, at, &w, add(out));
    } else if (w.n == 0) {
        rc = fail(ps, at, "an empty {% %}");
    } else if (strcmp(w.w[0], "if") == 0) {
        if (++ps->depth > 32)
            rc = fail(ps, at, "nested deeper than 32");
        else
            rc = parse_if(ps, at, &w, add(out));
        ps->depth--;
    } else if (strcmp(w.w[0], "for") == 0) {
        if (++ps->depth > 32)
            rc = fail(ps, at, "nested deeper than 32");
        else
            rc = parse_for(ps, at, &w, add(out));
        ps->depth--;
    } else {
        for (size_t i = 0; ends != NULL && ends[i] != NULL; i++)
            if (strcmp(w.w[0], ends[i]) == 0) {
                *end = ends[i];
                *endw = w;
                return 1;
            }
        char msg[160];
        snprintf(msg, sizeof msg, "'{%% %.40s %%}' is not part of bbmaster's template language",
                 w.w[0]);
        rc = fail(ps, at, msg);
    }
    words_free(&w);
    return rc;
}

/* Nodes until the end of the text (ends NULL) or one of the `ends` tags, whose words go to
 *endw for the caller (an elif's condition). */
static int parse_seq(struct parser *ps, struct seq *out, const char *const *ends, const char **end,
                     struct words *endw)
{
    const char *opened = ps->p;
    while (*ps->p != '\0') {
        const char *t = ps->p;
        while (*t != '\0' && !(t[0] == '{' && (t[1] == '{' || t[1] == '%' || t[1] == '#')))
            t++;
        if (t > ps->p) {
            struct node *n = add(out);
            n->kind = N_TEXT;
            n->len = (size_t)(t - ps->p);
            n->text = xasprintf("%.*s", (int)n->len, ps->p);
            ps->p = t;
            continue;
        }
        if (t[1] == '#') {
            const char *c = strstr(t + 2, "#}");
            if (c == NULL)
                return fail(ps, t, "'{#' is not closed");
            ps->p = c + 2;
            continue;
        }
        int rc = parse_tag(ps, out, ends, end, endw);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    if (ends != NULL)
        return fail(ps, opened,
                    ends[1] == NULL ? "this loop has no {% endfor %}"
                                    : "this if has no {% endif %}");
    return 0;
}

static void seq_free(struct seq *q)
{
    for (size_t i = 0; i < q->n; i++) {
        struct node *n = &q->v[i];
        free(n->text);
        free(n->alt);
        for (size_t j = 0; j < n->n_br; j++) {
            free(n->br[j].path);
            free(n->br[j].lit);
            seq_free(&n->br[j].body);
        }
        free(n->br);
        seq_free(&n->body);
    }
    free(q->v);
}

void rep_tmpl_free(struct rep_tmpl *t)
{
    if (t == NULL)
        return;
    seq_free(&t->top);
    free(t);
}

struct rep_tmpl *rep_tmpl_compile(const char *src, char **cause)
{
    if (strlen(src) > REP_TMPL_MAX) {
        *cause = xasprintf("the template is longer than %d bytes", REP_TMPL_MAX);
        return NULL;
    }
    /* Jinja (keep_trailing_newline false) drops one newline at the end of a template */
    size_t len = strlen(src);
    if (len > 0 && src[len - 1] == '\n')
        len -= len > 1 && src[len - 2] == '\r' ? 2 : 1;
    else if (len > 0 && src[len - 1] == '\r')
        len--;
    char *copy = xasprintf("%.*s", (int)len, src);
    struct rep_tmpl *t = xcalloc(1, sizeof *t);
    struct parser ps = {.s = copy, .p = copy};
    int rc = parse_seq(&ps, &t->top, NULL, NULL, NULL);
    free(copy);
    if (rc < 0) {
        *cause = ps.err;
        rep_tmpl_free(t);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ rendering */

struct scope {
    const char *name;
    const json_t *value;
    const struct scope *up;
};

/* The first name of `path` is a loop's variable (innermost first) or a key of the context;
   the others are keys of objects. */
static const json_t *lookup(const json_t *ctx, const struct scope *sc, const char *path)
{
    char key[256];
    const char *dot = strchr(path, '.');
    size_t len = dot != NULL ? (size_t)(dot - path) : strlen(path);
    snprintf(key, sizeof key, "%.*s", (int)len, path);
    const json_t *v = NULL;
    bool found = false;
    for (; sc != NULL && !found; sc = sc->up)
        if (strcmp(sc->name, key) == 0)
            v = sc->value, found = true;
    if (!found)
        v = json_object_get(ctx, key);
    while (v != NULL && dot != NULL) {
        path = dot + 1;
        dot = strchr(path, '.');
        len = dot != NULL ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof key, "%.*s", (int)len, path);
        v = json_is_object(v) ? json_object_get(v, key) : NULL;
    }
    return v;
}

static bool truthy(const json_t *v)
{
    if (v == NULL || json_is_null(v) || json_is_false(v))
        return false;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    if (json_is_real(v))
        return json_real_value(v) != 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return true;
}

/* A value as text: strings as they are, numbers as Python prints them, True/False, lists
   joined with ", " (Buildbot's ", ".join(blamelist)), nothing for null. */
static int emit(struct buf *out, const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v))
        return buf_add(out, json_string_value(v), json_string_length(v));
    if (json_is_true(v) || json_is_false(v))
        return buf_addstr(out, json_is_true(v) ? "True" : "False");
    if (json_is_integer(v))
        return buf_printf(out, "%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return buf_printf(out, "%g", json_real_value(v));
    if (json_is_array(v)) {
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x)
        {
            if ((i > 0 && buf_addstr(out, ", ") < 0) || emit(out, x) < 0)
                return -1;
        }
        return 0;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = s != NULL ? buf_addstr(out, s) : 0;
    free(s);
    return rc;
}

static bool text_eq(const json_t *v, const char *lit)
{
    struct buf b;
    buf_init(&b, REP_TMPL_MAX);
    bool eq = emit(&b, v) == 0 && strcmp(b.data != NULL ? b.data : "", lit) == 0;
    buf_free(&b);
    return eq;
}

static bool holds(const struct branch *br, const json_t *ctx, const struct scope *sc)
{
    const json_t *v = br->path != NULL ? lookup(ctx, sc, br->path) : NULL;
    switch (br->cond) {
    case C_TRUE:
        return truthy(v);
    case C_NOT:
        return !truthy(v);
    case C_EQ:
        return text_eq(v, br->lit);
    case C_NE:
        return !text_eq(v, br->lit);
    default:
        return true;
    }
}

static int run(const struct seq *q, const json_t *ctx, const struct scope *sc, struct buf *out)
{
    for (size_t i = 0; i < q->n; i++) {
        const struct node *n = &q->v[i];
        if (n->kind == N_TEXT) {
            if (buf_add(out, n->text, n->len) < 0)
                return -1;
        } else if (n->kind == N_VAR) {
            const json_t *v = lookup(ctx, sc, n->text);
            if (n->alt != NULL && !truthy(v)) {
                if (buf_addstr(out, n->alt) < 0)
                    return -1;
            } else if (emit(out, v) < 0) {
                return -1;
            }
        } else if (n->kind == N_IF) {
            for (size_t j = 0; j < n->n_br; j++) {
                if (!holds(&n->br[j], ctx, sc))
                    continue;
                if (run(&n->br[j].body, ctx, sc, out) < 0)
                    return -1;
                break;
            }
        } else {
            const json_t *list = lookup(ctx, sc, n->alt);
            size_t k;
            const json_t *x;
            json_array_foreach(list, k, x)
            {
                struct scope inner = {.name = n->text, .value = x, .up = sc};
                if (run(&n->body, ctx, &inner, out) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

char *rep_tmpl_render(const struct rep_tmpl *t, const json_t *ctx, char **cause)
{
    struct buf out;
    buf_init(&out, REP_TMPL_OUT_MAX);
    if (run(&t->top, ctx, NULL, &out) < 0) {
        buf_free(&out);
        *cause = xasprintf("the message is longer than %d bytes", REP_TMPL_OUT_MAX);
        return NULL;
    }
    return buf_take(&out);
}
