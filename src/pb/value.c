/*
 * The value model shared by the banana and jelly layers: constructors,
 * containers that take ownership of what is added, deep copy and equality,
 * tolerant readers (text or bytes, list or tuple), and a Python-like rendering
 * for logs.
 */
#include "pb/pb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pb_value *new_value(enum pb_kind kind)
{
    struct pb_value *v = xcalloc(1, sizeof *v);
    v->kind = kind;
    return v;
}

struct pb_value *pb_none(void)
{
    return new_value(PB_NONE);
}

struct pb_value *pb_bool(bool b)
{
    struct pb_value *v = new_value(PB_BOOL);
    v->u.b = b;
    return v;
}

struct pb_value *pb_int(int64_t i)
{
    struct pb_value *v = new_value(PB_INT);
    v->u.i = i;
    return v;
}

struct pb_value *pb_float(double f)
{
    struct pb_value *v = new_value(PB_FLOAT);
    v->u.f = f;
    return v;
}

static struct pb_value *new_string(enum pb_kind kind, const void *data, size_t len)
{
    struct pb_value *v = new_value(kind);
    v->u.s.data = xmalloc(len + 1);
    if (len > 0)
        memcpy(v->u.s.data, data, len);
    v->u.s.data[len] = '\0';
    v->u.s.len = len;
    return v;
}

struct pb_value *pb_bytes(const void *data, size_t len)
{
    return new_string(PB_BYTES, data, len);
}

struct pb_value *pb_text(const char *s)
{
    return new_string(PB_TEXT, s, strlen(s));
}

struct pb_value *pb_textn(const char *s, size_t len)
{
    return new_string(PB_TEXT, s, len);
}

struct pb_value *pb_list(void)
{
    return new_value(PB_LIST);
}

struct pb_value *pb_tuple(void)
{
    return new_value(PB_TUPLE);
}

struct pb_value *pb_dict(void)
{
    return new_value(PB_DICT);
}

struct pb_value *pb_remote(uint32_t luid)
{
    struct pb_value *v = new_value(PB_REMOTE);
    v->u.luid = luid;
    return v;
}

struct pb_value *pb_copy(const char *type, struct pb_value *state)
{
    struct pb_value *v = new_value(PB_COPY);
    v->u.copy.type = xstrdup(type);
    v->u.copy.state = state;
    return v;
}

static bool is_container(const struct pb_value *v)
{
    return v->kind == PB_LIST || v->kind == PB_TUPLE || v->kind == PB_DICT || v->kind == PB_SET ||
           v->kind == PB_FROZENSET;
}

struct pb_value *pb_append(struct pb_value *list, struct pb_value *item)
{
    list->u.list.items =
        xgrow(list->u.list.items, &list->u.list.cap, list->u.list.n + 1, sizeof(item));
    list->u.list.items[list->u.list.n++] = item;
    return list;
}

struct pb_value *pb_dict_set(struct pb_value *dict, const char *key, struct pb_value *value)
{
    struct pb_value **items = dict->u.list.items;
    for (size_t i = 0; i + 1 < dict->u.list.n; i += 2) {
        if (pb_is_str(items[i]) && strcmp(items[i]->u.s.data, key) == 0) {
            pb_value_free(items[i + 1]);
            items[i + 1] = value;
            return dict;
        }
    }
    pb_append(dict, pb_text(key));
    return pb_append(dict, value);
}

void pb_value_free(struct pb_value *v)
{
    if (v == NULL)
        return;
    if (is_container(v)) {
        for (size_t i = 0; i < v->u.list.n; i++)
            pb_value_free(v->u.list.items[i]);
        free(v->u.list.items);
    } else if (v->kind == PB_BYTES || v->kind == PB_TEXT || v->kind == PB_BIGINT) {
        free(v->u.s.data);
    } else if (v->kind == PB_COPY) {
        free(v->u.copy.type);
        pb_value_free(v->u.copy.state);
    }
    free(v);
}

struct pb_value *pb_value_dup(const struct pb_value *v)
{
    if (v == NULL)
        return NULL;
    struct pb_value *c = new_value(v->kind);
    c->u = v->u;
    if (is_container(v)) {
        memset(&c->u.list, 0, sizeof c->u.list);
        for (size_t i = 0; i < v->u.list.n; i++)
            pb_append(c, pb_value_dup(v->u.list.items[i]));
    } else if (v->kind == PB_BYTES || v->kind == PB_TEXT || v->kind == PB_BIGINT) {
        c->u.s.data = xmalloc(v->u.s.len + 1);
        memcpy(c->u.s.data, v->u.s.data, v->u.s.len + 1);
    } else if (v->kind == PB_COPY) {
        c->u.copy.type = xstrdup(v->u.copy.type);
        c->u.copy.state = pb_value_dup(v->u.copy.state);
    }
    return c;
}

bool pb_value_equal(const struct pb_value *a, const struct pb_value *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case PB_NONE:
        return true;
    case PB_BOOL:
        return a->u.b == b->u.b;
    case PB_INT:
        return a->u.i == b->u.i;
    case PB_FLOAT:
        return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
    case PB_BIGINT:
        if (a->u.s.neg != b->u.s.neg)
            return false;
        /* fall through */
    case PB_BYTES:
    case PB_TEXT:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.data, b->u.s.data, a->u.s.len) == 0;
    case PB_REMOTE:
    case PB_LOCAL:
        return a->u.luid == b->u.luid;
    case PB_COPY:
        return strcmp(a->u.copy.type, b->u.copy.type) == 0 &&
               pb_value_equal(a->u.copy.state, b->u.copy.state);
    default:
        if (a->u.list.n != b->u.list.n)
            return false;
        for (size_t i = 0; i < a->u.list.n; i++) {
            if (!pb_value_equal(a->u.list.items[i], b->u.list.items[i]))
                return false;
        }
        return true;
    }
}

bool pb_is_str(const struct pb_value *v)
{
    return v != NULL && (v->kind == PB_TEXT || v->kind == PB_BYTES);
}

const char *pb_str(const struct pb_value *v)
{
    return pb_is_str(v) ? v->u.s.data : NULL;
}

struct pb_value *pb_dict_get(const struct pb_value *dict, const char *key)
{
    if (dict == NULL || dict->kind != PB_DICT)
        return NULL;
    for (size_t i = 0; i + 1 < dict->u.list.n; i += 2) {
        const struct pb_value *k = dict->u.list.items[i];
        if (pb_is_str(k) && k->u.s.len == strlen(key) && strcmp(k->u.s.data, key) == 0)
            return dict->u.list.items[i + 1];
    }
    return NULL;
}

struct pb_value *pb_item(const struct pb_value *v, size_t i)
{
    if (v == NULL || !is_container(v) || v->kind == PB_DICT || i >= v->u.list.n)
        return NULL;
    return v->u.list.items[i];
}

size_t pb_len(const struct pb_value *v)
{
    return v != NULL && is_container(v) && v->kind != PB_DICT ? v->u.list.n : 0;
}

static void repr_string(struct buf *out, const struct pb_value *v, size_t max)
{
    buf_addstr(out, v->kind == PB_BYTES ? "b'" : "'");
    size_t n = v->u.s.len < max ? v->u.s.len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v->u.s.data[i];
        if (c == '\'' || c == '\\')
            buf_printf(out, "\\%c", c);
        else if (c == '\n')
            buf_addstr(out, "\\n");
        else if (c < 0x20 || c >= 0x7f) /* printable ASCII only: this goes into logs */
            buf_printf(out, "\\x%02x", c);
        else
            buf_addc(out, (char)c);
    }
    buf_addstr(out, n < v->u.s.len ? "'..." : "'");
}

static void repr_items(struct buf *out, const struct pb_value *v, size_t max, const char *open,
                       const char *close)
{
    buf_addstr(out, open);
    for (size_t i = 0; i < v->u.list.n; i++) {
        if (i > 0)
            buf_addstr(out, v->kind == PB_DICT && i % 2 ? ": " : ", ");
        pb_value_repr(out, v->u.list.items[i], max);
    }
    if (v->kind == PB_TUPLE && v->u.list.n == 1)
        buf_addc(out, ',');
    buf_addstr(out, close);
}

void pb_value_repr(struct buf *out, const struct pb_value *v, size_t max)
{
    if (v == NULL) {
        buf_addstr(out, "NULL");
        return;
    }
    switch (v->kind) {
    case PB_NONE:
        buf_addstr(out, "None");
        break;
    case PB_BOOL:
        buf_addstr(out, v->u.b ? "True" : "False");
        break;
    case PB_INT:
        buf_printf(out, "%lld", (long long)v->u.i);
        break;
    case PB_BIGINT:
        buf_printf(out, "%s<bigint %zu groups>", v->u.s.neg ? "-" : "", v->u.s.len);
        break;
    case PB_FLOAT:
        buf_printf(out, "%.17g", v->u.f);
        break;
    case PB_BYTES:
    case PB_TEXT:
        repr_string(out, v, max);
        break;
    case PB_LIST:
        repr_items(out, v, max, "[", "]");
        break;
    case PB_TUPLE:
        repr_items(out, v, max, "(", ")");
        break;
    case PB_DICT:
        repr_items(out, v, max, "{", "}");
        break;
    case PB_SET:
    case PB_FROZENSET:
        repr_items(out, v, max, v->kind == PB_SET ? "set([" : "frozenset([", "])");
        break;
    case PB_REMOTE:
    case PB_LOCAL:
        buf_printf(out, "<%s #%u>", v->kind == PB_REMOTE ? "remote" : "local", v->u.luid);
        break;
    case PB_COPY:
        buf_printf(out, "<%s ", v->u.copy.type);
        pb_value_repr(out, v->u.copy.state, max);
        buf_addc(out, '>');
        break;
    }
}
