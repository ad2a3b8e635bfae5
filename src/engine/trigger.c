/*
 * The trigger step, as Buildbot's Trigger: a buildset for each named
 * triggerable scheduler's builders, with the parent build's source stamps
 * (their revision set from got_revision when updateSourceStamp), the step's
 * set_properties and copy_properties (source "Trigger") after the scheduler's
 * own, the reason "The Triggerable scheduler named 'X' triggered this build",
 * and parent_buildid / "Triggered from".  With waitForFinish the step waits
 * for those buildsets and takes the worst of their results; its summary
 * counts them ("triggered trig, 1 success").  Interrupted, it cancels what it
 * triggered.
 */
#include "engine/internal.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

struct trigger {
    json_t *names; /* the schedulers triggered */
    json_t *bsids; /* the buildsets made */
    json_t *brids; /* their requests (a list: two schedulers may share a builder) */
    bool wait;
};

void trigger_free(struct step *s)
{
    struct trigger *t = s->trigger;
    if (t == NULL)
        return;
    json_decref(t->names);
    json_decref(t->bsids);
    json_decref(t->brids);
    free(t);
    s->trigger = NULL;
}

static const struct cfg_scheduler *triggerable(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_schedulers; i++)
        if (util_streq(cfg->schedulers[i].name, name) &&
            util_streq(cfg->schedulers[i].kind, "triggerable"))
            return &cfg->schedulers[i];
    return NULL;
}

/* The build's source stamps, revisions from got_revision when asked (updateSourceStamp). */
static json_t *stamps(struct step *s, bool update, bool latest)
{
    json_t *out = json_deep_copy(s->b->sourcestamps);
    const json_t *got = props_get(&s->b->props, "got_revision");
    size_t i;
    json_t *ss;
    json_array_foreach(out, i, ss)
    {
        const char *cb = json_string_value(json_object_get(ss, "codebase"));
        const json_t *rev = json_is_object(got) ? json_object_get(got, cb ? cb : "") : got;
        if (latest)
            json_object_set_new(ss, "revision", json_string(""));
        else if (update && json_is_string(rev))
            json_object_set(ss, "revision", (json_t *)rev);
    }
    return out;
}

/* The step's set_properties, then its copy_properties (a later one replacing an earlier
   in place, as a Python dict does), as a JSON object; NULL on error. */
static json_t *step_props(struct step *s, char **cause)
{
    json_t *set = NULL, *copy = NULL;
    if (step_render(s, "set_properties", &set, cause) != 0 ||
        step_render(s, "copy_properties", &copy, cause) != 0) {
        json_decref(set);
        return NULL;
    }
    json_t *mine = json_is_object(set) ? json_incref(set) : json_object();
    size_t i;
    json_t *name;
    json_array_foreach(copy, i, name)
    {
        const json_t *v = props_get(&s->b->props, json_string_value(name));
        if (v != NULL)
            json_object_set(mine, json_string_value(name), (json_t *)v);
    }
    json_decref(set);
    json_decref(copy);
    return mine;
}

/* In Buildbot's order: the scheduler's own properties, its `scheduler` ("Scheduler"), then
   the step's ("Trigger"), the scheduler's winning a clash (Buildbot applies them again
   last).  *reason: the step's `reason` property, or NULL (Buildbot's Triggerable). */
static json_t *properties(struct step *s, const struct cfg_scheduler *sc, char **reason,
                          char **cause)
{
    json_t *props = json_array(), *own = NULL;
    lua_State *L = s->b->cfg->lua;
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->ref);
    if (lua_istable(L, -1) && lua_getfield(L, -1, "properties") == LUA_TTABLE) {
        struct render_ctx c = build_render_ctx(s->b);
        own = render(&c, -1, cause);
    }
    lua_settop(L, top);
    json_t *mine = *cause == NULL ? step_props(s, cause) : NULL;
    if (mine == NULL) {
        json_decref(own);
        json_decref(props);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(own, k, v)
    {
        if (!util_streq(k, "scheduler"))
            json_array_append_new(props, json_pack("[sOs]", k, v, "Scheduler"));
    }
    json_array_append_new(props, json_pack("[sss]", "scheduler", sc->name, "Scheduler"));
    json_object_foreach(mine, k, v)
    {
        if (json_object_get(own, k) == NULL && !util_streq(k, "scheduler"))
            json_array_append_new(props, json_pack("[sOs]", k, v, "Trigger"));
    }
    const char *r = json_string_value(json_object_get(mine, "reason"));
    *reason = r != NULL ? xstrdup(r) : NULL;
    json_decref(own);
    json_decref(mine);
    return props;
}

static void set_urls(struct step *s, json_t *urls)
{
    char *text = json_dumps(urls, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    struct db_param p[] = {DB_TEXT(text), DB_INT(s->id)};
    char *cause = NULL;
    if (db_exec(s->b->e->db, "UPDATE steps SET urls_json = ? WHERE id = ?", p, 2, &cause) != 0)
        engine_db_error("adding step URLs", cause);
    else
        engine_publish(s->b->e, EV_STEP, s->id, EV_UPDATED);
    free(text);
}

/* getCurrentSummary: "triggered a, b" and the count of each result. */
static void summarize(struct step *s, const int *counts)
{
    static const char *const plural[] = {"successes",  "warnings", "failures", "skipped",
                                         "exceptions", "retries",  "cancelled"};
    struct trigger *t = s->trigger;
    struct buf b;
    buf_init(&b, 1u << 16);
    buf_addstr(&b, "triggered ");
    size_t i;
    json_t *n;
    json_array_foreach(t->names, i, n)
    {
        buf_printf(&b, "%s%s", i > 0 ? ", " : "", json_string_value(n));
    }
    for (int r = 0; counts != NULL && r <= RES_CANCELLED; r++)
        if (counts[r] > 0)
            buf_printf(&b, ", %d %s", counts[r], counts[r] > 1 ? plural[r] : res_name(r));
    buf_addc(&b, '\0');
    free(s->description_done);
    s->description_done = buf_take(&b);
    free(s->description);
    s->description = xstrdup(s->description_done);
}

static const char *base_url(const struct step *s)
{
    return s->b->cfg->buildbot_url != NULL ? s->b->cfg->buildbot_url : "";
}

/* The scheduler that made buildset `bsid`. */
static const char *scheduler_of(const struct step *s, long long bsid)
{
    struct trigger *t = s->trigger;
    for (size_t i = 0; i < json_array_size(t->bsids); i++)
        if (json_integer_value(json_array_get(t->bsids, i)) == bsid)
            return json_string_value(json_array_get(t->names, i));
    return "?";
}

/* The triggered requests are all complete: the step's results, summary and URLs. */
static void finished(struct step *s, struct db_res *r)
{
    int counts[RES_CANCELLED + 1] = {0}, results = RES_SUCCESS;
    json_t *urls = json_array();
    for (size_t i = 0; i < db_res_rows(r); i++) {
        long long brid = db_res_int(r, i, 0);
        int res = (int)db_res_int(r, i, 2);
        char *name = xasprintf("%s #%lld", scheduler_of(s, db_res_int(r, i, 3)), brid);
        char *url = xasprintf("%s#buildrequests/%lld", base_url(s), brid);
        json_array_append_new(urls, json_pack("{ssss}", "name", name, "url", url));
        free(name);
        free(url);
        if (!db_res_null(r, i, 4)) {
            name =
                xasprintf("%s: %s #%lld", res_name(res), db_res_text(r, i, 5), db_res_int(r, i, 4));
            url = xasprintf("%s#builders/%lld/builds/%lld", base_url(s), db_res_int(r, i, 6),
                            db_res_int(r, i, 4));
            json_array_append_new(urls, json_pack("{ssss}", "name", name, "url", url));
            free(name);
            free(url);
        }
        if (res >= 0 && res <= RES_CANCELLED)
            counts[res]++;
        results = res_worst(results, res == RES_SKIPPED ? RES_SUCCESS : res);
    }
    set_urls(s, urls);
    json_decref(urls);
    summarize(s, counts);
    step_finish(s, results);
}

/* The triggered requests: brid, complete, results, buildset, build number, builder, id;
   found by the step's own buildsets (an index), not by scanning buildsets for the parent. */
static struct db_res *requests(struct step *s, char **cause)
{
    json_t *bsids = s->trigger->bsids;
    size_t n = json_array_size(bsids);
    if (n == 0 || n > 64) {
        util_cause(cause, "a trigger step made %zu buildsets", n);
        return NULL;
    }
    struct buf sql;
    buf_init(&sql, 8192);
    buf_addstr(&sql, "SELECT br.id, br.complete, br.results, br.buildsetid, "
                     "(SELECT MAX(number) FROM builds WHERE buildrequestid = br.id), b.name, b.id "
                     "FROM buildrequests br JOIN builders b ON b.id = br.builderid "
                     "WHERE br.buildsetid IN (");
    struct db_param p[64];
    for (size_t i = 0; i < n; i++) {
        buf_addstr(&sql, i > 0 ? ", ?" : "?");
        p[i] = DB_INT(json_integer_value(json_array_get(bsids, i)));
    }
    buf_addstr(&sql, ") ORDER BY br.id");
    buf_addc(&sql, '\0');
    struct db_res *r = db_query(s->b->e->db, sql.data, p, n, cause);
    buf_free(&sql);
    return r;
}

void trigger_poll(struct step *s)
{
    if (s->trigger == NULL || !s->trigger->wait || s->results >= 0)
        return;
    char *cause = NULL;
    struct db_res *r = requests(s, &cause);
    if (r == NULL) {
        engine_db_error("reading triggered requests", cause);
        return;
    }
    bool all = true;
    for (size_t i = 0; i < db_res_rows(r); i++)
        all = all && db_res_int(r, i, 1) != 0;
    if (all) {
        s->trigger->wait = false;
        finished(s, r);
    }
    db_res_free(r);
}

void trigger_run(struct step *s)
{
    struct trigger *t = s->trigger = xcalloc(1, sizeof *t);
    char *cause = NULL;
    json_t *names = NULL, *wait = NULL, *update = NULL, *latest = NULL;
    if (step_render(s, "schedulerNames", &names, &cause) != 0 ||
        step_render(s, "waitForFinish", &wait, &cause) != 0 ||
        step_render(s, "updateSourceStamp", &update, &cause) != 0 ||
        step_render(s, "alwaysUseLatest", &latest, &cause) != 0)
        goto fail;
    t->names = json_is_string(names) ? json_pack("[O]", names) : json_incref(names);
    t->wait = json_is_true(wait);
    t->bsids = json_array();
    t->brids = json_array();
    json_t *ss = stamps(s, update == NULL || json_is_true(update), json_is_true(latest));
    json_t *urls = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(t->names, i, n)
    {
        const struct cfg_scheduler *sc = triggerable(s->b->cfg, json_string_value(n));
        if (sc == NULL) {
            cause = xasprintf("Trigger: scheduler '%s' is not a triggerable scheduler",
                              json_string_value(n) ? json_string_value(n) : "?");
            json_decref(ss);
            json_decref(urls);
            goto fail;
        }
        char *reason = NULL;
        json_t *props = properties(s, sc, &reason, &cause), *builders = json_array(), *brids = NULL;
        for (size_t k = 0; k < sc->n_builder_names; k++)
            json_array_append_new(builders, json_string(sc->builder_names[k]));
        if (reason == NULL)
            reason =
                xasprintf("The Triggerable scheduler named '%s' triggered this build", sc->name);
        struct bs_extra x = {.parent_buildid = s->b->id,
                             .parent_relationship = "Triggered from",
                             .waited_for = t->wait};
        char *who = xasprintf("scheduler '%s'", sc->name);
        struct eng_buildset bs = {who, reason, props, ss, builders, 0};
        long long bsid = props == NULL ? -1 : buildset_add(s->b->e, &bs, &x, &brids, &cause);
        free(who);
        free(reason);
        json_decref(props);
        json_decref(builders);
        if (bsid < 0) {
            json_decref(ss);
            json_decref(urls);
            goto fail;
        }
        json_array_append_new(t->bsids, json_integer(bsid));
        const char *k;
        json_t *v;
        json_object_foreach(brids, k, v)
        {
            long long brid = (long long)json_integer_value(v);
            json_array_append(t->brids, v);
            char *name = xasprintf("%s #%lld", sc->name, brid);
            char *url = xasprintf("%s#buildrequests/%lld", base_url(s), brid);
            json_array_append_new(urls, json_pack("{ssss}", "name", name, "url", url));
            free(name);
            free(url);
        }
        json_decref(brids);
    }
    json_decref(ss);
    set_urls(s, urls);
    json_decref(urls);
    summarize(s, NULL);
    if (t->wait) {
        trigger_poll(s); /* nothing to wait for if everything collapsed away */
    } else {
        step_finish(s, RES_SUCCESS);
    }
    json_decref(names);
    json_decref(wait);
    json_decref(update);
    json_decref(latest);
    return;
fail:
    json_decref(names);
    json_decref(wait);
    json_decref(update);
    json_decref(latest);
    step_fail(s, RES_EXCEPTION, cause != NULL ? cause : "bad trigger step parameters");
    free(cause);
}

bool trigger_waiting(const struct step *s)
{
    return s->trigger != NULL && s->trigger->wait && s->results < 0;
}

bool trigger_interrupt(struct step *s)
{
    struct trigger *t = s->trigger;
    if (!trigger_waiting(s))
        return false;
    t->wait = false;
    size_t i;
    json_t *v;
    json_array_foreach(t->brids, i, v)
    {
        engine_cancel_request(s->b->e, (long long)json_integer_value(v),
                              "parent build was interrupted");
    }
    step_finish(s, RES_CANCELLED);
    return true;
}
