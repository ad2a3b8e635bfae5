/*
 * Jelly, Twisted's value serialization on top of banana: every list in a
 * jellied value starts with a tag ("unicode", "None", "tuple", "dictionary",
 * "remote", ...).  Unjellying follows Twisted's security options as the PB
 * broker sets them: the basic tags and the one copyable Buildbot uses
 * (CopyableFailure) are accepted, everything that could name code (module,
 * class, instance, function, ...) is refused.  Shared containers
 * (reference/dereference) are copied, with every copy counted against the
 * caller's bound on values (the connection's max_nodes) so a small message
 * cannot expand without bound.
 */
#include "pb/pb.h"

#include <stdlib.h>
#include <string.h>

#define COPYABLE_FAILURE "twisted.spread.pb.CopyableFailure"

struct unjelly {
    struct pb_value **refs; /* by reference id; NULL while being built (a cycle) */
    size_t n_refs, cap_refs;
    size_t nodes;
    size_t max_nodes;
};

static size_t count_nodes(const struct pb_value *v)
{
    size_t n = 1;
    if (v->kind == PB_COPY)
        return n + count_nodes(v->u.copy.state);
    if (v->kind >= PB_LIST && v->kind <= PB_FROZENSET)
        for (size_t i = 0; i < v->u.list.n; i++)
            n += count_nodes(v->u.list.items[i]);
    return n;
}

static int unjelly(struct unjelly *u, const struct pb_value *t, struct pb_value **out,
                   char **cause);

static int tag_is(const struct pb_value *tag, const char *name)
{
    return tag->u.s.len == strlen(name) && memcmp(tag->u.s.data, name, tag->u.s.len) == 0;
}

static int unjelly_items(struct unjelly *u, const struct pb_value *t, enum pb_kind kind,
                         struct pb_value **out, char **cause)
{
    struct pb_value *v = pb_list();
    v->kind = kind;
    for (size_t i = 1; i < t->u.list.n; i++) {
        struct pb_value *item;
        if (unjelly(u, t->u.list.items[i], &item, cause) != 0) {
            pb_value_free(v);
            return -1;
        }
        pb_append(v, item);
    }
    *out = v;
    return 0;
}

static int unjelly_dict(struct unjelly *u, const struct pb_value *t, struct pb_value **out,
                        char **cause)
{
    struct pb_value *v = pb_dict();
    for (size_t i = 1; i < t->u.list.n; i++) {
        const struct pb_value *pair = t->u.list.items[i];
        struct pb_value *k = NULL, *val = NULL;
        if (pair->kind != PB_LIST || pair->u.list.n != 2) {
            pb_value_free(v);
            return util_cause(cause, "jelly: a dictionary entry is not a [key, value] pair");
        }
        if (unjelly(u, pair->u.list.items[0], &k, cause) != 0 ||
            unjelly(u, pair->u.list.items[1], &val, cause) != 0) {
            pb_value_free(k);
            pb_value_free(v);
            return -1;
        }
        pb_append(pb_append(v, k), val);
    }
    *out = v;
    return 0;
}

static int ref_id(const struct unjelly *u, const struct pb_value *t, size_t at, size_t *id,
                  char **cause)
{
    const struct pb_value *v = at < t->u.list.n ? t->u.list.items[at] : NULL;
    if (v == NULL || v->kind != PB_INT || v->u.i < 1 || (uint64_t)v->u.i > u->max_nodes)
        return util_cause(cause, "jelly: bad reference id");
    *id = (size_t)v->u.i;
    return 0;
}

static int unjelly_reference(struct unjelly *u, const struct pb_value *t, struct pb_value **out,
                             char **cause)
{
    size_t id = 0;
    if (t->u.list.n != 3 || ref_id(u, t, 1, &id, cause) != 0)
        return util_cause(cause, "jelly: malformed reference");
    if (id > u->n_refs) {
        u->refs = xgrow(u->refs, &u->cap_refs, id, sizeof *u->refs);
        memset(u->refs + u->n_refs, 0, (id - u->n_refs) * sizeof *u->refs);
        u->n_refs = id;
    }
    if (unjelly(u, t->u.list.items[2], out, cause) != 0)
        return -1;
    pb_value_free(u->refs[id - 1]);
    u->refs[id - 1] = pb_value_dup(*out);
    return 0;
}

static int unjelly_dereference(struct unjelly *u, const struct pb_value *t, struct pb_value **out,
                               char **cause)
{
    size_t id = 0;
    if (t->u.list.n != 2 || ref_id(u, t, 1, &id, cause) != 0)
        return util_cause(cause, "jelly: malformed dereference");
    if (id > u->n_refs || u->refs[id - 1] == NULL)
        return util_cause(cause, "jelly: dereference of an unknown or cyclic reference %zu", id);
    u->nodes += count_nodes(u->refs[id - 1]);
    if (u->nodes > u->max_nodes)
        return util_cause(cause, "jelly: shared references expand to too many values");
    *out = pb_value_dup(u->refs[id - 1]);
    return 0;
}

static int unjelly_scalar_tag(const struct pb_value *t, const struct pb_value *tag,
                              struct pb_value **out, char **cause)
{
    const struct pb_value *arg = t->u.list.n > 1 ? t->u.list.items[1] : NULL;
    if (tag_is(tag, "None")) {
        *out = pb_none();
    } else if (tag_is(tag, "unicode")) {
        if (t->u.list.n != 2 || arg->kind != PB_BYTES)
            return util_cause(cause, "jelly: malformed unicode");
        if (util_utf8_valid(arg->u.s.data, arg->u.s.len) != arg->u.s.len)
            return util_cause(cause, "jelly: text is not valid UTF-8");
        *out = pb_textn(arg->u.s.data, arg->u.s.len);
    } else if (tag_is(tag, "boolean")) {
        if (t->u.list.n != 2 || arg->kind != PB_BYTES ||
            (!tag_is(arg, "true") && !tag_is(arg, "false")))
            return util_cause(cause, "jelly: malformed boolean");
        *out = pb_bool(tag_is(arg, "true"));
    } else if (tag_is(tag, "remote") || tag_is(tag, "local")) {
        if (t->u.list.n != 2 || arg->kind != PB_INT || arg->u.i < 0 || arg->u.i > UINT32_MAX)
            return util_cause(cause, "jelly: malformed object reference");
        *out = pb_remote((uint32_t)arg->u.i);
        (*out)->kind = tag_is(tag, "remote") ? PB_REMOTE : PB_LOCAL;
    } else {
        return 1;
    }
    return 0;
}

static int unjelly_list(struct unjelly *u, const struct pb_value *t, struct pb_value **out,
                        char **cause)
{
    const struct pb_value *tag = t->u.list.n > 0 ? t->u.list.items[0] : NULL;
    if (tag == NULL || tag->kind != PB_BYTES)
        return util_cause(cause, "jelly: a list without a type tag");
    int rc = unjelly_scalar_tag(t, tag, out, cause);
    if (rc <= 0)
        return rc;
    if (tag_is(tag, "list"))
        return unjelly_items(u, t, PB_LIST, out, cause);
    if (tag_is(tag, "tuple"))
        return unjelly_items(u, t, PB_TUPLE, out, cause);
    if (tag_is(tag, "set"))
        return unjelly_items(u, t, PB_SET, out, cause);
    if (tag_is(tag, "frozenset"))
        return unjelly_items(u, t, PB_FROZENSET, out, cause);
    if (tag_is(tag, "dictionary"))
        return unjelly_dict(u, t, out, cause);
    if (tag_is(tag, "reference"))
        return unjelly_reference(u, t, out, cause);
    if (tag_is(tag, "dereference"))
        return unjelly_dereference(u, t, out, cause);
    if (tag_is(tag, COPYABLE_FAILURE) && t->u.list.n == 2) {
        struct pb_value *state;
        if (unjelly(u, t->u.list.items[1], &state, cause) != 0)
            return -1;
        *out = pb_copy(COPYABLE_FAILURE, state);
        return 0;
    }
    return util_cause(cause, "jelly: refused type '%.*s' (insecure or unknown)",
                      (int)(tag->u.s.len > 80 ? 80 : tag->u.s.len), tag->u.s.data);
}

static int unjelly(struct unjelly *u, const struct pb_value *t, struct pb_value **out, char **cause)
{
    if (++u->nodes > u->max_nodes)
        return util_cause(cause, "jelly: too many values");
    switch (t->kind) {
    case PB_INT:
    case PB_BIGINT:
    case PB_FLOAT:
    case PB_BYTES:
        *out = pb_value_dup(t);
        return 0;
    case PB_LIST:
        return unjelly_list(u, t, out, cause);
    default:
        return util_cause(cause, "jelly: not a banana tree");
    }
}

int pb_unjelly(const struct pb_value *tree, size_t max_nodes, struct pb_value **out, char **cause)
{
    struct unjelly u = {.max_nodes = max_nodes};
    struct pb_value *v = NULL;
    int rc = unjelly(&u, tree, &v, cause);
    for (size_t i = 0; i < u.n_refs; i++)
        pb_value_free(u.refs[i]);
    free(u.refs);
    if (rc == 0)
        *out = v;
    return rc;
}

/* ------------------------------------------------------------ jelly */

static struct pb_value *tagged(const char *tag)
{
    return pb_append(pb_list(), pb_bytes(tag, strlen(tag)));
}

static const char *container_tag(enum pb_kind kind)
{
    switch (kind) {
    case PB_LIST:
        return "list";
    case PB_TUPLE:
        return "tuple";
    case PB_SET:
        return "set";
    default:
        return "frozenset";
    }
}

struct pb_value *pb_jelly(const struct pb_value *v)
{
    struct pb_value *t;
    switch (v->kind) {
    case PB_NONE:
        return tagged("None");
    case PB_BOOL:
        return pb_append(tagged("boolean"), pb_bytes(v->u.b ? "true" : "false", v->u.b ? 4 : 5));
    case PB_TEXT:
        return pb_append(tagged("unicode"), pb_bytes(v->u.s.data, v->u.s.len));
    case PB_REMOTE:
    case PB_LOCAL:
        return pb_append(tagged(v->kind == PB_REMOTE ? "remote" : "local"), pb_int(v->u.luid));
    case PB_COPY:
        return pb_append(tagged(v->u.copy.type), pb_jelly(v->u.copy.state));
    case PB_DICT:
        t = tagged("dictionary");
        for (size_t i = 0; i + 1 < v->u.list.n; i += 2) {
            struct pb_value *pair = pb_list();
            pb_append(pair, pb_jelly(v->u.list.items[i]));
            pb_append(t, pb_append(pair, pb_jelly(v->u.list.items[i + 1])));
        }
        return t;
    case PB_LIST:
    case PB_TUPLE:
    case PB_SET:
    case PB_FROZENSET:
        t = tagged(container_tag(v->kind));
        for (size_t i = 0; i < v->u.list.n; i++)
            pb_append(t, pb_jelly(v->u.list.items[i]));
        return t;
    default:
        return pb_value_dup(v);
    }
}

/* ------------------------------------------------------------ failures */

struct pb_value *pb_failure_new(const char *type, const char *value, const char *const *parents)
{
    struct pb_value *state = pb_dict();
    pb_dict_set(state, "count", pb_int(1));
    pb_dict_set(state, "type", pb_bytes(type, strlen(type)));
    pb_dict_set(state, "value", pb_text(value != NULL ? value : ""));
    pb_dict_set(state, "captureVars", pb_bool(false));
    pb_dict_set(state, "frames", pb_list());
    pb_dict_set(state, "stack", pb_list());
    pb_dict_set(state, "tb", pb_none());
    struct pb_value *list = pb_list();
    if (parents != NULL) {
        for (size_t i = 0; parents[i] != NULL; i++)
            pb_append(list, pb_text(parents[i]));
    } else {
        static const char *const base[] = {"builtins.Exception", "builtins.BaseException",
                                           "builtins.object"};
        pb_append(list, pb_text(type));
        for (size_t i = 0; i < UTIL_NELEM(base); i++)
            pb_append(list, pb_text(base[i]));
    }
    pb_dict_set(state, "parents", list);
    pb_dict_set(state, "pickled", pb_int(1));
    pb_dict_set(state, "unsafeTracebacks", pb_bool(false));
    pb_dict_set(state, "traceback", pb_text("Traceback unavailable\n"));
    return pb_copy(COPYABLE_FAILURE, state);
}

bool pb_failure_is(const struct pb_value *failure, const char *type)
{
    if (failure == NULL || failure->kind != PB_COPY)
        return false;
    const struct pb_value *state = failure->u.copy.state;
    if (util_streq(pb_str(pb_dict_get(state, "type")), type))
        return true;
    const struct pb_value *parents = pb_dict_get(state, "parents");
    for (size_t i = 0; i < pb_len(parents); i++) {
        if (util_streq(pb_str(pb_item(parents, i)), type))
            return true;
    }
    return false;
}

char *pb_failure_describe(const struct pb_value *failure)
{
    if (failure == NULL || failure->kind != PB_COPY)
        return xstrdup("unknown failure");
    const struct pb_value *state = failure->u.copy.state;
    const char *type = pb_str(pb_dict_get(state, "type"));
    const char *value = pb_str(pb_dict_get(state, "value"));
    return xasprintf("%s: %s", type != NULL ? type : "?", value != NULL ? value : "");
}
