/*
 * A change sent by `buildbot sendchange` or `bbmaster sendchange` to a
 * bbm.changes.pb change source (the dict of Buildbot's Sender), read as
 * Buildbot's ChangePerspective.perspective_addChange reads it: who is the
 * author, when the timestamp, empty revlink, repository and project are "",
 * files outside the source's prefix are dropped (and the prefix taken off the
 * others), byte strings are decoded as UTF-8, and "src" names the version
 * control system the author's user object is made for.
 */
#include "changes/internal.h"

#include <stdlib.h>
#include <string.h>

#include "pb/pb.h"

#define MAX_DEPTH 16

/* Bytes as UTF-8 text, bad sequences replaced by U+FFFD (Python's 'replace'). */
static json_t *utf8(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    if (v != NULL)
        return v;
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_addstr(&b, c < 0x80 ? (char[]){(char)c, 0} : "\xef\xbf\xbd");
    }
    v = json_stringn(b.data ? b.data : "", b.len);
    buf_free(&b);
    return v;
}

static json_t *to_json(const struct pb_value *v, int depth)
{
    if (v == NULL || depth > MAX_DEPTH)
        return json_null();
    switch (v->kind) {
    case PB_BOOL:
        return json_boolean(v->u.b);
    case PB_INT:
        return json_integer(v->u.i);
    case PB_FLOAT:
        return json_real(v->u.f);
    case PB_BYTES:
    case PB_TEXT:
        return utf8(v->u.s.data, v->u.s.len);
    case PB_LIST:
    case PB_TUPLE: {
        json_t *a = json_array();
        for (size_t i = 0; i < pb_len(v); i++)
            json_array_append_new(a, to_json(pb_item(v, i), depth + 1));
        return a;
    }
    case PB_DICT: {
        json_t *o = json_object();
        for (size_t i = 0; i + 1 < v->u.list.n; i += 2) { /* key, value, key, value... */
            const char *k = pb_str(v->u.list.items[i]);
            if (k != NULL)
                json_object_set_new(o, k, to_json(v->u.list.items[i + 1], depth + 1));
        }
        return o;
    }
    default:
        return json_null();
    }
}

static bool falsy(const json_t *v)
{
    return v == NULL || json_is_null(v) || json_is_false(v) ||
           (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

static int rename_key(json_t *d, const char *from, const char *to)
{
    json_t *v = json_object_get(d, from);
    if (v == NULL)
        return 0;
    json_object_set(d, to, v);
    return json_object_del(d, from);
}

int changes_pb(struct chg *c, const struct cfg_change_source *cs, const struct pb_value *dict,
               char **cause)
{
    static const char *const known[] = {
        "author",   "committer", "files",      "comments",   "revision", "when_timestamp", "branch",
        "category", "revlink",   "properties", "repository", "codebase", "project",        "src"};
    json_t *d = to_json(dict, 0);
    static const char *const empty[] = {"revlink", "repository", "project"};
    for (size_t i = 0; i < UTIL_NELEM(empty); i++)
        if (json_object_get(d, empty[i]) != NULL && falsy(json_object_get(d, empty[i])))
            json_object_set_new(d, empty[i], json_string(""));
    if (falsy(json_object_get(d, "files")))
        json_object_set_new(d, "files", json_array());
    if (json_object_get(d, "committer") != NULL && falsy(json_object_get(d, "committer")))
        json_object_set_new(d, "committer", json_null());
    rename_key(d, "who", "author");
    rename_key(d, "when", "when_timestamp");
    json_object_del(d, "links");
    json_t *when = json_object_get(d, "when_timestamp");
    if (json_is_real(when))
        json_object_set_new(d, "when_timestamp", json_integer((json_int_t)json_real_value(when)));
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(d, tmp, k, v)
    {
        size_t i = 0;
        while (i < UTIL_NELEM(known) && strcmp(known[i], k) != 0)
            i++;
        if (i == UTIL_NELEM(known)) {
            util_cause(cause, "addChange() got an unexpected keyword argument '%.64s'", k);
            json_decref(d);
            return -1;
        }
        if (json_is_null(v) && strcmp(k, "files") != 0)
            json_object_del(d, k); /* Buildbot's defaults */
    }
    json_t *files = json_array();
    size_t i;
    json_array_foreach(json_object_get(d, "files"), i, v)
    {
        const char *path = json_string_value(v);
        size_t n = cs->prefix != NULL ? strlen(cs->prefix) : 0;
        if (path != NULL && (n == 0 || strncmp(path, cs->prefix, n) == 0))
            json_array_append_new(files, json_string(path + n));
    }
    json_object_set_new(d, "files", files);
    char *src = json_is_string(json_object_get(d, "src"))
                    ? xstrdup(json_string_value(json_object_get(d, "src")))
                    : NULL;
    json_object_del(d, "src");
    int rc = changes_check(d, cause);
    if (rc == 0) {
        json_t *one = json_pack("[o]", d);
        rc = chg_store(c, one, src) < 0 ? util_cause(cause, "the change could not be stored") : 0;
        json_decref(one);
    } else {
        json_decref(d);
    }
    free(src);
    return rc;
}
