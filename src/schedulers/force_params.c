/*
 * The force action: the parameters a force form posts, checked and turned into
 * a buildset the way Buildbot 4.3's ForceScheduler.force does it.  Every field
 * of the form's spec takes its value from the parameter named by its fullName
 * (or its default), is validated by its type (choices, required, maxsize,
 * email for usernames, integers), and ends up as a property, the reason, the
 * owner, the priority, or a field of a codebase's source stamp.  Validation
 * errors are collected per field, as Buildbot's collector does.
 */
#include "schedulers/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16

struct parse {
    const json_t *params;
    json_t *errors; /* fullName -> message */
};

static void invalid(struct parse *p, const json_t *spec, const char *msg)
{
    const char *full = json_string_value(json_object_get(spec, "fullName"));
    json_object_set_new(p->errors, full != NULL ? full : "", json_string(msg));
}

/* Python's repr of a list of strings, as Buildbot's messages show choices. */
static char *repr_list(const json_t *list)
{
    struct buf b;
    buf_init(&b, 1u << 16);
    buf_addc(&b, '[');
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        buf_printf(&b, "%s'%s'", i > 0 ? ", " : "",
                   json_string_value(v) ? json_string_value(v) : "");
    }
    buf_addc(&b, ']');
    return buf_take(&b);
}

static bool blank(const json_t *v)
{
    const char *s = json_string_value(v);
    if (s == NULL)
        return false;
    while (isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

/* The arguments posted for a field: a list, with blank strings left out. */
static json_t *field_args(const struct parse *p, const json_t *spec)
{
    const char *full = json_string_value(json_object_get(spec, "fullName"));
    const json_t *v = full != NULL ? json_object_get(p->params, full) : NULL;
    json_t *args = json_array();
    if (json_is_array(v)) {
        size_t i;
        const json_t *a;
        json_array_foreach(v, i, a)
        {
            if (!blank(a))
                json_array_append(args, (json_t *)a);
        }
    } else if (v != NULL && !blank(v)) {
        json_array_append(args, (json_t *)v);
    }
    return args;
}

/* An address in the form 'User <email@example.com>' somewhere in s. */
static bool has_email(const char *s)
{
    const char *at = strchr(s, '@');
    return at != NULL && at > s && !isspace((unsigned char)at[-1]) && at[1] != '\0' &&
           !isspace((unsigned char)at[1]);
}

static json_t *parse_one(struct parse *p, const json_t *spec, const json_t *arg)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    const char *s = json_string_value(arg);
    char msg[2048];
    if (strcmp(type, "fixed") == 0)
        return json_incref(json_object_get(spec, "default"));
    if (strcmp(type, "int") == 0) {
        if (json_is_integer(arg))
            return json_incref((json_t *)arg);
        char *end = NULL;
        errno = 0;
        long long v = s != NULL ? strtoll(s, &end, 10) : 0;
        if (s == NULL || end == s || *end != '\0' || errno != 0) {
            snprintf(msg, sizeof msg, "invalid literal for int() with base 10: '%s'",
                     s != NULL ? s : "?");
            invalid(p, spec, msg);
            return NULL;
        }
        return json_integer(v);
    }
    if (strcmp(type, "list") == 0 && json_is_true(json_object_get(spec, "strict"))) {
        const json_t *choices = json_object_get(spec, "choices");
        size_t i;
        const json_t *c;
        json_array_foreach(choices, i, c)
        {
            if (json_equal(c, arg))
                return json_incref((json_t *)arg);
        }
        char *list = repr_list(choices);
        snprintf(msg, sizeof msg, "'%s' does not belong to list of available choices '%s'",
                 s != NULL ? s : "?", list);
        free(list);
        invalid(p, spec, msg);
        return NULL;
    }
    if (strcmp(type, "username") == 0 && s != NULL && *s != '\0' &&
        json_is_true(json_object_get(spec, "need_email")) && !has_email(s)) {
        snprintf(msg, sizeof msg,
                 "%s: please fill in email address in the form 'User <email@email.com>'",
                 json_string_value(json_object_get(spec, "name")));
        invalid(p, spec, msg);
        return NULL;
    }
    return json_incref((json_t *)arg);
}

/* BaseParameter.getFromKwargs: the field's value, or NULL after recording why not. */
static json_t *leaf_value(struct parse *p, const json_t *spec)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    const char *label = json_string_value(json_object_get(spec, "label"));
    json_t *args = field_args(p, spec);
    if (strcmp(type, "bool") == 0) {
        bool on = json_array_size(args) == 1 && json_is_true(json_array_get(args, 0));
        json_decref(args);
        return json_boolean(on);
    }
    char msg[1024];
    bool multiple = json_is_true(json_object_get(spec, "multiple"));
    if (json_array_size(args) == 0) {
        if (json_is_true(json_object_get(spec, "required"))) {
            snprintf(msg, sizeof msg, "'%s' needs to be specified", label ? label : "");
            invalid(p, spec, msg);
            json_decref(args);
            return NULL;
        }
        json_t *d = json_object_get(spec, "default");
        if (multiple && json_is_array(d))
            json_array_extend(args, d);
        else
            json_array_append(args, d);
    }
    const json_t *maxsize = json_object_get(spec, "maxsize");
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a)
    {
        if (json_is_integer(maxsize) && json_is_string(a) &&
            (json_int_t)json_string_length(a) > json_integer_value(maxsize)) {
            snprintf(msg, sizeof msg, "%s: is too large %zu > %lld", label ? label : "",
                     json_string_length(a), (long long)json_integer_value(maxsize));
            invalid(p, spec, msg);
            json_decref(args);
            return NULL;
        }
    }
    json_t *out = multiple ? json_array() : NULL;
    json_array_foreach(args, i, a)
    {
        json_t *v = parse_one(p, spec, a);
        if (v == NULL || !multiple) {
            json_decref(args);
            return v;
        }
        json_array_append_new(out, v);
    }
    json_decref(args);
    return out;
}

/* NestedParameter.updateFromKwargs: children into `into` (an anonymous nest collapses). */
static void collect(struct parse *p, const json_t *spec, json_t *into, int depth)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    const char *name = json_string_value(json_object_get(spec, "name"));
    if (type == NULL || name == NULL || depth > MAX_DEPTH)
        return;
    if (strcmp(type, "nested") != 0) {
        json_t *v = leaf_value(p, spec);
        if (v != NULL)
            json_object_set_new(into, name, v);
        return;
    }
    json_t *children = json_object();
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(spec, "fields"), i, f)
    {
        collect(p, f, children, depth + 1);
    }
    if (*name == '\0') {
        json_object_update(into, children);
        json_decref(children);
    } else {
        json_t *have = json_object_get(into, name);
        if (json_is_object(have)) {
            json_object_update(have, children);
            json_decref(children);
        } else {
            json_object_set_new(into, name, children);
        }
    }
}

/* The leaf called `name` among the anonymous first nest (username, reason, priority). */
static const json_t *own_field(const json_t *all, const char *name)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(json_array_get(all, 0), "fields"), i, f)
    {
        if (util_streq(json_string_value(json_object_get(f, "name")), name))
            return f;
    }
    return NULL;
}

static bool allowed(const json_t *spec, const char *builder)
{
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(spec, "builder_names"), i, n)
    {
        if (util_streq(json_string_value(n), builder))
            return true;
    }
    return false;
}

/* computeBuilderNames: the posted names the scheduler has, sorted; all of them if none. */
static json_t *builder_names(const json_t *spec, const json_t *params)
{
    const json_t *asked = json_object_get(params, "builderNames");
    if (asked == NULL || json_is_null(asked))
        return json_deep_copy(json_object_get(spec, "builder_names"));
    json_t *names = json_array();
    size_t i;
    const json_t *n;
    json_array_foreach(asked, i, n)
    {
        const char *s = json_string_value(n);
        if (s == NULL || !allowed(spec, s))
            continue;
        size_t at = 0, k;
        const json_t *have;
        bool dup = false;
        json_array_foreach(names, k, have)
        {
            int c = strcmp(json_string_value(have), s);
            dup = dup || c == 0;
            at += c < 0;
        }
        if (!dup)
            json_array_insert_new(names, at, json_string(s));
    }
    return names;
}

/* reasonString % {'owner': ..., 'reason': ...}; other text is kept as written. */
static char *format_reason(const char *fmt, const char *owner, const char *reason)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    for (const char *c = fmt; *c != '\0'; c++) {
        if (strncmp(c, "%(owner)s", 9) == 0) {
            buf_addstr(&b, owner);
            c += 8;
        } else if (strncmp(c, "%(reason)s", 10) == 0) {
            buf_addstr(&b, reason);
            c += 9;
        } else if (strncmp(c, "%%", 2) == 0) {
            buf_addc(&b, '%');
            c++;
        } else {
            buf_addc(&b, *c);
        }
    }
    return buf_take(&b);
}

static json_t *own_value(struct parse *p, const json_t *all, const char *name)
{
    const json_t *f = own_field(all, name);
    return f != NULL ? leaf_value(p, f) : NULL;
}

static char *text_of(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (v == NULL || json_is_null(v))
        return xstrdup("None");
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* Codebase fields become source stamps; the other top-level fields, properties. */
static void gather(struct parse *p, const json_t *all, const struct force_extra *x,
                   struct sched_force_req *out)
{
    json_t *props = json_object();
    size_t n_cb = json_array_size(x->codebases);
    for (size_t i = 1; i < json_array_size(all); i++) {
        const json_t *f = json_array_get(all, i);
        if (i > n_cb) {
            collect(p, f, props, 0);
            continue;
        }
        json_t *holder = json_object();
        collect(p, f, holder, 0);
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *ss =
            *name != '\0' ? json_incref(json_object_get(holder, name)) : json_incref(holder);
        if (!json_is_object(ss)) {
            json_decref(ss);
            ss = json_object();
        }
        json_object_set(ss, "codebase", json_array_get(x->codebases, i - 1));
        json_array_append_new(out->sourcestamps, ss);
        json_decref(holder);
    }
    const char *key;
    json_t *v;
    json_object_foreach(props, key, v)
    {
        json_array_append_new(out->properties, json_pack("[sO]", key, v));
    }
    json_decref(props);
}

int sched_force_parse(const struct cfg *cfg, const char *name, const json_t *params,
                      struct sched_force_req *out, json_t **errors)
{
    memset(out, 0, sizeof *out);
    *errors = NULL;
    struct force_extra x = {0};
    json_t *spec = force_spec(cfg, name, &x);
    if (spec == NULL)
        return SCHED_FORCE_UNKNOWN;
    int rc = SCHED_FORCE_OK;
    out->builders = builder_names(spec, params);
    if (json_array_size(out->builders) == 0) {
        rc = SCHED_FORCE_NO_BUILDER;
        goto done;
    }
    struct parse p = {params, json_object()};
    const json_t *all = json_object_get(spec, "all_fields");
    json_t *reason = own_value(&p, all, "reason");
    json_t *owner = json_object_get(params, "owner");
    owner = json_is_string(owner) && !util_streq(json_string_value(owner), "anonymous")
                ? json_incref(owner)
                : own_value(&p, all, "username");
    json_t *prio = own_value(&p, all, "priority");
    out->properties = json_array();
    out->sourcestamps = json_array();
    gather(&p, all, &x, out);
    if (json_object_size(p.errors) > 0) {
        *errors = p.errors;
        rc = SCHED_FORCE_INVALID;
    } else {
        json_decref(p.errors);
        char *r = text_of(reason), *o = text_of(owner);
        json_array_append_new(out->properties, json_pack("[sO]", "reason", reason));
        json_array_append_new(out->properties, json_pack("[sO]", "owner", owner));
        out->reason = format_reason(x.reason_fmt, o, r);
        out->priority = json_is_integer(prio) ? (long long)json_integer_value(prio) : 0;
        free(r);
        free(o);
    }
    json_decref(reason);
    json_decref(owner);
    json_decref(prio);
done:
    json_decref(spec);
    json_decref(x.codebases);
    free(x.reason_fmt);
    if (rc != SCHED_FORCE_OK)
        sched_force_req_free(out);
    return rc;
}

void sched_force_req_free(struct sched_force_req *r)
{
    json_decref(r->builders);
    json_decref(r->properties);
    json_decref(r->sourcestamps);
    free(r->reason);
    memset(r, 0, sizeof *r);
}
