/*
 * Buildbot's path patterns: "builders/n:builderid/builds/n:build_number".
 * `n:` takes what Python's int() takes, `i:` an identifier, `s:` and a bare
 * `:name` any segment as a string, the empty one too (Python's str() takes it:
 * to Buildbot, /builders/ names the builder "").
 */
#include "www/internal.h"

#include <ctype.h>
#include <string.h>

static bool is_identifier(const char *s)
{
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == '-'))
        return false;
    for (s++; *s != '\0'; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static bool match_seg(const char *pat, size_t plen, const char *seg, struct www_args *a)
{
    const char *colon = memchr(pat, ':', plen);
    if (colon == NULL)
        return strlen(seg) == plen && memcmp(pat, seg, plen) == 0;
    char flag = colon > pat ? pat[0] : '\0';
    long long num = 0;
    if (flag == 'n' && !www_parse_int(seg, &num))
        return false;
    if (flag == 'i' && !is_identifier(seg))
        return false;
    a->str[a->n] = seg;
    a->num[a->n] = num;
    a->names[a->n] = colon + 1; /* ends at the next '/' of the pattern */
    a->n++;
    return true;
}

bool www_path_match(const char *pattern, char *const *segs, size_t nsegs, struct www_args *args)
{
    struct www_args a = {0};
    const char *p = pattern;
    size_t i = 0;
    while (*p != '\0' && *p != ',') {
        const char *end = p + strcspn(p, "/,");
        if (i >= nsegs || a.n >= WWW_PATH_MAX_SEGS || !match_seg(p, (size_t)(end - p), segs[i], &a))
            return false;
        i++;
        p = *end == '/' ? end + 1 : end;
    }
    if (i != nsegs)
        return false;
    *args = a;
    return true;
}

static bool name_is(const char *pat_name, const char *name)
{
    size_t n = strlen(name);
    return strncmp(pat_name, name, n) == 0 &&
           (pat_name[n] == '\0' || pat_name[n] == '/' || pat_name[n] == ',');
}

const char *www_arg_str(const struct www_args *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (name_is(a->names[i], name))
            return a->str[i];
    return NULL;
}

bool www_arg_num(const struct www_args *a, const char *name, long long *out)
{
    for (size_t i = 0; i < a->n; i++)
        if (name_is(a->names[i], name)) {
            *out = a->num[i];
            return true;
        }
    return false;
}
