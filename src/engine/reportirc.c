/*
 * What the IRC reporters say of builds, as Buildbot's words.py decides it: a
 * build that starts ("started") and one that finishes (notify_for_finished:
 * "finished", its result's name, or better / worse / problem / recovery and the
 * deprecated "failureToSuccess" kind against build number - 1 of the builder,
 * RETRY not skipped), for the builders matching the bot's tags, each chat of
 * the bot by its own events (the previous build read once, when one needs it).
 * The text goes to the bot (src/reporters/irc.c), which never waits, with the
 * build for the chats that `watch` it.
 */
#include <string.h>

#include "engine/internal.h"
#include "reporters/reporters.h"

/* builderMatchesAnyTag: no tags given is every builder. */
static bool tags_match(const struct cfg_irc *irc, const struct cfg_builder *bc)
{
    if (irc->tags == NULL)
        return true;
    for (size_t i = 0; bc != NULL && i < bc->n_tags; i++)
        for (size_t j = 0; j < irc->n_tags; j++)
            if (strcmp(bc->tags[i], irc->tags[j]) == 0)
                return true;
    return false;
}

/* The results of build number - 1: REP_PREV_NONE without one, REP_PREV_RUNNING when it is
   not finished, -3 when the database failed (logged). */
static int previous_results(struct build *b)
{
    char *cause = NULL;
    struct db_param p[] = {DB_INT(b->builderid), DB_INT(b->number - 1)};
    struct db_res *r = db_query(b->e->db,
                                "SELECT results FROM builds WHERE builderid = ? AND "
                                "number = ?",
                                p, 2, &cause);
    if (r == NULL) {
        log_error("build %lld: IRC: the previous build is not known: %s", b->id, cause);
        free(cause);
        return -3;
    }
    int prev = db_res_rows(r) == 0    ? REP_PREV_NONE
               : db_res_null(r, 0, 0) ? REP_PREV_RUNNING
                                      : (int)db_res_int(r, 0, 0);
    db_res_free(r);
    return prev;
}

/* Whether a finished build is worth a line: the previous build is read once, when some
   event needs it. */
static bool wanted(struct build *b, uint32_t events, int *prev)
{
    uint32_t compare = REP_IRC_EV_BETTER | REP_IRC_EV_WORSE | REP_IRC_EV_PROBLEM |
                       REP_IRC_EV_RECOVERY | ~((1u << REP_IRC_EV_TO_SHIFT) - 1);
    if (rep_irc_wants(events & ~compare, b->results, REP_PREV_NONE))
        return true;
    if (!(events & compare))
        return false;
    if (*prev == -4)
        *prev = previous_results(b);
    return *prev != -3 && rep_irc_wants(events, b->results, *prev);
}

/* What one chat's notify_events decide of the build. */
struct irc_want {
    struct build *b;
    bool complete;
    int prev;
};

static bool chat_wants(uint32_t events, void *arg)
{
    struct irc_want *w = arg;
    return w->complete ? wanted(w->b, events, &w->prev) : (events & REP_IRC_EV_STARTED) != 0;
}

void report_irc(struct build *b, bool complete, const char *state_string)
{
    const struct cfg *cfg = b->e->cfg;
    struct rep_irc *ri = b->e->rep != NULL ? rep_irc_of(b->e->rep) : NULL;
    if (ri == NULL || cfg->n_ircs == 0)
        return;
    const struct cfg_builder *bc = cfg_find_builder(cfg, b->builder);
    char *url =
        xasprintf("%s#/builders/%lld/builds/%lld", cfg->buildbot_url, b->builderid, b->number);
    struct irc_want w = {b, complete, -4}; /* the previous build not read yet */
    for (size_t i = 0; i < cfg->n_ircs; i++) {
        const struct cfg_irc *irc = &cfg->ircs[i];
        if (!tags_match(irc, bc))
            continue;
        char *text = complete ? rep_irc_finished_text(b->number, url, b->builder, b->results,
                                                      state_string, irc->use_colors)
                              : rep_irc_started_text(b->number, url, b->builder);
        rep_irc_notify(ri, irc->name, text, chat_wants, &w, complete ? b->id : -1);
        free(text);
    }
    free(url);
}
