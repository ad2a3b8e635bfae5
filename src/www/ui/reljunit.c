/*
 * The JUnit failures /release_status shows under a stable builder's latest
 * and breaking builds, as buildbot.python.org's dashboard does: its builds
 * upload regrtest's --junit-xml file to
 * DIR/<branch tag>/<builder>/build_<number>.xml (www.release_test_results),
 * and the page shows the tests that have <error> elements as a tree by the
 * dotted parts of their names ("test." dropped), each level naming the
 * exception types below it, each failing test its errors' tracebacks.
 *
 * The original's rules (release_dashboard.py, JunitResult.add): every element
 * with <error> children, in the order of its first one, is added; a test's
 * errors are kept once each (a re-run that fails the same way adds nothing).
 * Its template renders each top-level entry with the root's tree (a slip:
 * "test_os.test_os..."); here each top-level entry renders its own subtree.
 *
 * The file is parsed with expat as it is read, 64 KiB at a time, never held
 * whole; entity declarations stop the parse.  Bounds: the file's size, the
 * failing tests and errors kept, a traceback's length and the HTML of one
 * build (JUNIT_* below); past them the rest is left out and the page says so.
 * A file that is absent, unreadable, too big or not XML shows nothing, as in
 * the original.
 */
#include "www/ui/release.h"

#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JUNIT_FILE_MAX ((long long)64 << 20) /* bytes of XML read */
#define JUNIT_TESTS 100                      /* elements with errors kept */
#define JUNIT_ERRORS 200                     /* errors kept */
#define JUNIT_TEXT 4096                      /* bytes of one traceback */
#define JUNIT_ATTRS 1024                     /* bytes of an error's attributes */
#define JUNIT_NAME 512                       /* bytes of a test's name */
#define JUNIT_DEPTH 64                       /* elements open at once */
#define JUNIT_PARTS 32                       /* dotted parts of a name */
#define JUNIT_HTML (32 * 1024)               /* HTML of one build */

struct jerror {
    char *type;
    char *attrs; /* every attribute, "k\1v\1...": what makes two errors the same */
    struct buf text;
    bool truncated;
};

struct jtest { /* an element with <error> children */
    char *name;
    size_t errors[JUNIT_ERRORS]; /* indexes in parse.errors */
    size_t n_errors;
};

struct parse {
    XML_Parser xp;
    struct jerror errors[JUNIT_ERRORS];
    size_t n_errors;
    struct jtest tests[JUNIT_TESTS];
    size_t n_tests;
    bool more; /* some were left out */
    /* the open elements: their "name" attribute, and their test's index or -1 */
    char *names[JUNIT_DEPTH];
    long test_of[JUNIT_DEPTH];
    int depth;
    long in_error; /* the error whose text is being read, or -1 */
    int error_depth;
};

/* ------------------------------------------------------------ parsing */

static const char *attr(const XML_Char **atts, const char *key)
{
    for (size_t i = 0; atts[i] != NULL; i += 2)
        if (strcmp(atts[i], key) == 0)
            return atts[i + 1];
    return NULL;
}

static char *attrs_key(const XML_Char **atts)
{
    struct buf b;
    buf_init(&b, JUNIT_ATTRS);
    for (size_t i = 0; atts[i] != NULL; i += 2)
        buf_printf(&b, "%s\1%s\1", atts[i], atts[i + 1]);
    char *s = buf_take(&b);
    return s != NULL ? s : xstrdup("");
}

/* An <error> inside the element at depth-1: its test (made at its first error). */
static void error_start(struct parse *ps, const XML_Char **atts)
{
    int parent = ps->depth - 1;
    if (parent < 0)
        return;
    if (ps->test_of[parent] < 0) {
        if (ps->n_tests == JUNIT_TESTS) {
            ps->more = true;
            return;
        }
        ps->test_of[parent] = (long)ps->n_tests;
        const char *name = ps->names[parent];
        ps->tests[ps->n_tests++] = (struct jtest){.name = xstrdup(name != NULL ? name : "??")};
    }
    if (ps->n_errors == JUNIT_ERRORS) {
        ps->more = true;
        return;
    }
    struct jtest *t = &ps->tests[ps->test_of[parent]];
    struct jerror *e = &ps->errors[ps->n_errors];
    const char *type = attr(atts, "type");
    e->type = xstrdup(type != NULL ? type : "None");
    e->attrs = attrs_key(atts);
    buf_init(&e->text, JUNIT_TEXT);
    t->errors[t->n_errors++] = ps->n_errors;
    ps->in_error = (long)ps->n_errors++;
    ps->error_depth = ps->depth;
}

static void start_cb(void *arg, const XML_Char *el, const XML_Char **atts)
{
    struct parse *ps = arg;
    if (ps->in_error >= 0 && ps->depth > ps->error_depth)
        ps->in_error = -1; /* ElementTree's .text: only what comes before a child */
    if (strcmp(el, "error") == 0)
        error_start(ps, atts);
    if (ps->depth == JUNIT_DEPTH) {
        XML_StopParser(ps->xp, XML_FALSE);
        return;
    }
    const char *name = attr(atts, "name");
    ps->names[ps->depth] = name != NULL ? xstrndup(name, strnlen(name, JUNIT_NAME - 1)) : NULL;
    ps->test_of[ps->depth] = -1;
    ps->depth++;
}

static void end_cb(void *arg, const XML_Char *el)
{
    (void)el;
    struct parse *ps = arg;
    if (ps->depth == 0)
        return;
    ps->depth--;
    free(ps->names[ps->depth]);
    ps->names[ps->depth] = NULL;
    if (ps->in_error >= 0 && ps->depth <= ps->error_depth)
        ps->in_error = -1;
}

static void text_cb(void *arg, const XML_Char *s, int len)
{
    struct parse *ps = arg;
    if (ps->in_error < 0 || ps->depth != ps->error_depth + 1)
        return;
    struct jerror *e = &ps->errors[ps->in_error];
    if (!e->truncated && buf_add(&e->text, s, (size_t)len) < 0) {
        size_t room = JUNIT_TEXT - 1 > e->text.len ? JUNIT_TEXT - 1 - e->text.len : 0;
        buf_add(&e->text, s, room < (size_t)len ? room : (size_t)len);
        e->truncated = true;
    }
}

/* No DTD entities: a file that declares some is not a test report. */
static void entity_cb(void *arg, const XML_Char *name, int param, const XML_Char *value, int len,
                      const XML_Char *base, const XML_Char *sys, const XML_Char *pub,
                      const XML_Char *notation)
{
    (void)name, (void)param, (void)value, (void)len, (void)base, (void)sys, (void)pub;
    (void)notation;
    struct parse *ps = arg;
    XML_StopParser(ps->xp, XML_FALSE);
}

static void parse_free(struct parse *ps)
{
    for (size_t i = 0; i < ps->n_errors; i++) {
        free(ps->errors[i].type);
        free(ps->errors[i].attrs);
        buf_free(&ps->errors[i].text);
    }
    for (size_t i = 0; i < ps->n_tests; i++)
        free(ps->tests[i].name);
    for (int i = 0; i < ps->depth; i++)
        free(ps->names[i]);
}

/* 0 when the whole file parsed. */
static int parse_file(FILE *f, struct parse *ps)
{
    ps->xp = XML_ParserCreate("UTF-8");
    XML_SetUserData(ps->xp, ps);
    XML_SetElementHandler(ps->xp, start_cb, end_cb);
    XML_SetCharacterDataHandler(ps->xp, text_cb);
    XML_SetEntityDeclHandler(ps->xp, entity_cb);
    ps->in_error = -1;
    char chunk[64 * 1024];
    long long total = 0;
    int rc = 0;
    for (;;) {
        size_t n = fread(chunk, 1, sizeof chunk, f);
        total += (long long)n;
        bool last = n < sizeof chunk;
        if ((last && ferror(f)) || total > JUNIT_FILE_MAX ||
            XML_Parse(ps->xp, chunk, (int)n, last) != XML_STATUS_OK) {
            rc = -1;
            break;
        }
        if (last)
            break;
    }
    XML_ParserFree(ps->xp);
    return rc;
}

/* ------------------------------------------------------------ the tree */

struct jnode {
    char *name;
    size_t *kids; /* indexes in tree.nodes, in the order they came */
    size_t n_kids;
    const struct jerror **errors;
    size_t n_errors;
    const char **types; /* sorted, without repeats */
    size_t n_types;
};

struct tree {
    struct jnode *nodes;
    size_t n;
};

static void add_type(struct jnode *n, const char *type)
{
    for (size_t i = 0; i < n->n_types; i++)
        if (strcmp(n->types[i], type) == 0)
            return;
    n->types = xrealloc(n->types, (n->n_types + 1) * sizeof *n->types);
    size_t at = n->n_types++;
    while (at > 0 && strcmp(n->types[at - 1], type) > 0) {
        n->types[at] = n->types[at - 1];
        at--;
    }
    n->types[at] = type;
}

static size_t child(struct tree *t, size_t parent, const char *name, size_t len)
{
    for (size_t i = 0; i < t->nodes[parent].n_kids; i++) {
        size_t k = t->nodes[parent].kids[i];
        if (strlen(t->nodes[k].name) == len && memcmp(t->nodes[k].name, name, len) == 0)
            return k;
    }
    t->nodes = xrealloc(t->nodes, (t->n + 1) * sizeof *t->nodes);
    t->nodes[t->n] = (struct jnode){.name = xstrndup(name, len)};
    struct jnode *p = &t->nodes[parent];
    p->kids = xrealloc(p->kids, (p->n_kids + 1) * sizeof *p->kids);
    p->kids[p->n_kids++] = t->n;
    return t->n++;
}

static bool same_error(const struct jerror *a, const struct jerror *b)
{
    return strcmp(a->attrs, b->attrs) == 0 && a->text.len == b->text.len &&
           (a->text.len == 0 || memcmp(a->text.data, b->text.data, a->text.len) == 0);
}

/* JunitResult.add: the test's types on every level of its path, its errors on the leaf
   (for each not there yet, all of them: the original's loop). */
static void tree_add(struct tree *t, const struct parse *ps, const struct jtest *test)
{
    const char *parts[JUNIT_PARTS];
    size_t lens[JUNIT_PARTS], np = 0;
    for (const char *s = test->name; np < JUNIT_PARTS;) {
        size_t n = strcspn(s, ".");
        parts[np] = s;
        lens[np++] = n;
        if (s[n] == '\0')
            break;
        s += n + 1;
    }
    size_t first = lens[0] == 4 && memcmp(parts[0], "test", 4) == 0 ? 1 : 0;
    size_t at = 0;
    for (size_t i = first; i < np; i++) {
        for (size_t e = 0; e < test->n_errors; e++)
            add_type(&t->nodes[at], ps->errors[test->errors[e]].type);
        at = child(t, at, parts[i], lens[i]);
    }
    struct jnode *leaf = &t->nodes[at];
    for (size_t e = 0; e < test->n_errors; e++)
        add_type(leaf, ps->errors[test->errors[e]].type);
    for (size_t e = 0; e < test->n_errors; e++) {
        const struct jerror *err = &ps->errors[test->errors[e]];
        bool seen = false;
        for (size_t k = 0; k < leaf->n_errors && !seen; k++)
            seen = same_error(leaf->errors[k], err);
        if (seen)
            continue;
        leaf->errors =
            xrealloc(leaf->errors, (leaf->n_errors + test->n_errors) * sizeof *leaf->errors);
        for (size_t k = 0; k < test->n_errors; k++)
            leaf->errors[leaf->n_errors++] = &ps->errors[test->errors[k]];
    }
}

static void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->nodes[i].name);
        free(t->nodes[i].kids);
        free(t->nodes[i].errors);
        free(t->nodes[i].types);
    }
    free(t->nodes);
}

/* ------------------------------------------------------------ HTML */

/* The template's junit_result macro: a level with one child and no errors of its own is
   folded into its child's name. */
static void node_html(const struct tree *t, size_t at, struct buf *name, bool top, struct buf *out)
{
    const struct jnode *n = &t->nodes[at];
    if (n->n_kids == 1 && n->n_errors == 0) {
        size_t len = name->len;
        if (len > 0)
            buf_addc(name, '.');
        buf_addstr(name, t->nodes[n->kids[0]].name);
        node_html(t, n->kids[0], name, top, out);
        name->len = len;
        if (name->data != NULL)
            name->data[len] = '\0';
        return;
    }
    html_put(out,
             "<details%S class=\"junit-result\"><summary><code>%s</code> "
             "<span class=\"exception-summary\">(",
             top ? "" : " open", name->data != NULL ? name->data : "");
    for (size_t i = 0; i < n->n_types; i++) {
        if (i == 3) {
            buf_addstr(out, "...");
            break;
        }
        html_put(out, "<code>%s</code>%S", n->types[i], i + 1 < n->n_types ? ", " : "");
    }
    buf_addstr(out, ")</span></summary>");
    for (size_t i = 0; i < n->n_errors; i++) {
        const struct jerror *e = n->errors[i];
        html_put(out,
                 "<details class=\"junit-error\"><summary><code>%s</code></summary>"
                 "<pre class=\"junit-traceback\">",
                 e->type);
        html_text(out, e->text.data != NULL ? e->text.data : "", e->text.len);
        html_put(out, "%S</pre></details>", e->truncated ? "\n[...]" : "");
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        struct buf sub;
        buf_init(&sub, 0);
        buf_addstr(&sub, t->nodes[n->kids[i]].name);
        node_html(t, n->kids[i], &sub, false, out);
        buf_free(&sub);
    }
    buf_addstr(out, "</details>");
}

static char *results_html(const struct parse *ps)
{
    struct tree t = {.nodes = xcalloc(1, sizeof *t.nodes), .n = 1};
    t.nodes[0].name = xstrdup("");
    for (size_t i = 0; i < ps->n_tests; i++)
        tree_add(&t, ps, &ps->tests[i]);
    struct buf out;
    buf_init(&out, 0);
    for (size_t i = 0; i < t.nodes[0].n_kids; i++) {
        struct buf name;
        buf_init(&name, 0);
        buf_addstr(&name, t.nodes[t.nodes[0].kids[i]].name);
        node_html(&t, t.nodes[0].kids[i], &name, true, &out);
        buf_free(&name);
    }
    if (out.len > JUNIT_HTML) { /* cut at a test: a page of tracebacks helps nobody */
        buf_free(&out);
        buf_init(&out, 0);
        html_put(&out, "<p class=\"mut\">%D failing tests: too many to show here.</p>",
                 (long long)ps->n_tests);
    } else if (ps->more) {
        buf_addstr(&out, "<p class=\"mut\">More failures are not shown.</p>");
    }
    tree_free(&t);
    char *s = buf_take(&out);
    return s != NULL ? s : xstrdup("");
}

/* ------------------------------------------------------------ the file */

/* DIR/TAG/BUILDER/build_N.xml, when it resolves inside DIR; NULL otherwise. */
static char *results_path(const char *dir, const char *tag, const char *builder, long long number)
{
    char root[PATH_MAX], real[PATH_MAX];
    if (realpath(dir, root) == NULL)
        return NULL;
    char *path = xasprintf("%s/%s/%s/build_%lld.xml", root, tag, builder, number);
    size_t n = strlen(root);
    bool inside = realpath(path, real) != NULL && strncmp(real, root, n) == 0 && real[n] == '/';
    free(path);
    return inside ? xstrdup(real) : NULL;
}

char *rel_junit_html_file(FILE *f)
{
    struct parse *ps = xcalloc(1, sizeof *ps);
    char *html = parse_file(f, ps) == 0 ? results_html(ps) : xstrdup("");
    parse_free(ps);
    free(ps);
    return html;
}

char *rel_junit_html(const char *dir, const char *tag, const char *builder, long long number)
{
    char *path = dir != NULL && tag != NULL ? results_path(dir, tag, builder, number) : NULL;
    FILE *f = path != NULL ? fopen(path, "rb") : NULL;
    free(path);
    if (f == NULL)
        return xstrdup("");
    char *html = rel_junit_html_file(f);
    fclose(f);
    return html;
}
