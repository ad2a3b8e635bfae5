/*
 * What the reporters' parts of the engine share: the event a report is made of (a build
 * that started or finished, a build request made or cancelled, or one build of a completed
 * buildset), the generators' filters and BuildStatusGenerator's message, used by report.c
 * (statuses and the dispatch), reportmail.c (MailNotifier's mails, of builds and of
 * buildsets) and reportq.c (the queue of the reports still to make).
 */
#ifndef BBM_ENGINE_REPORT_H
#define BBM_ENGINE_REPORT_H

#include <lua.h>
#include <stdbool.h>

#include "engine/internal.h"

struct report_event {
    struct build *b;
    const char *state;    /* the build's state_string */
    bool request;         /* BuildRequestGenerator's events, else the builds' */
    bool complete;        /* finished, or cancelled */
    bool buildset;        /* BuildSetStatusGenerator's: b is one build of a completed buildset */
    int buildset_results; /* then the buildset's results */
    char what[48];        /* "build 12", "build request 7", "buildset 3": for the log */
    char *url;            /* target_url */
};

/* is_message_needed_by_props: the generator's builders, tags, schedulers and branches. */
bool report_wanted(const struct build *b, const struct cfg_generator *g,
                   const struct cfg_builder *bc);
/* The generator hears the event (by its kind, and report_new). */
bool report_hears(const struct report_event *ev, const struct cfg_generator *g);
/* BuildStatusGenerator's (and BuildSetStatusGenerator's, for one build) report of the event:
   1 with *body (and *subject when asked; the caller frees both), 0 when its modes do not want
   the finished build, -1 with *cause.  The caller sets L's stack back (lua_settop). */
int report_status_message(const struct report_event *ev, const struct cfg_generator *g,
                          lua_State *L, char **body, char **subject, char **cause);

/* reportmail.c, for every mail: Python's sorted(set(...)) of v[0..n) in place (the new
   count); an address's bare form ("a@b" of "Name <a@b>", malloc'd); the Message-ID that every
   attempt of a mail shares, <bbmaster.{key}.{reporter}@{fromaddr's domain}> (the key
   "new.{buildid}", "finished.{buildid}", "buildset.{bsid}" or "missing.{worker}.{since}";
   characters other than letters, digits, '.', '-' and '_' written '_'; malloc'd); and the
   Date header's text now. */
size_t report_sorted_set(const char **v, size_t n);
char *report_bare(const char *addr);
char *report_message_id(const char *key, const char *reporter, const char *fromaddr);
void report_mail_date(char *out, size_t size);

/* reportmail.c: MailNotifier's mail of a build event. */
void report_mail(const struct report_event *ev, const struct cfg_reporter *rc);

/* report.c: where the reports' notifications go: into e->rep's outbox, or, on the reports
   thread, into its engine's batch (reportq.c).  0, or -1 with *cause. */
struct rep_status;
struct rep_post;
struct rep_mail;
int report_out_status(struct engine *e, const struct rep_status *st, char **cause);
int report_out_post(struct engine *e, const struct rep_post *p, char **cause);
int report_out_mail(struct engine *e, const struct rep_mail *m, char **cause);

/* report.c: report_build, report_buildset and report_request made at once, not queued
   (reportq.c calls them as it takes its events). */
void report_build_now(struct build *b, bool complete, const char *state_string);
void report_buildset_now(struct engine *e, long long bsid);
void report_request_now(struct engine *e, long long brid, long long bsid, const char *builder,
                        long long builderid, bool cancelled);
/* reportmail.c: a completed buildset's mails, made a build at a time with the configuration
   in force at begin, which must outlive them.  begin: NULL with *cause when the database
   cannot be read.  step: 1 when there is more to do, 0 when the mails are stored. */
struct buildset_mails;
struct buildset_mails *report_buildset_begin(struct engine *e, long long bsid, char **cause);
int report_buildset_step(struct buildset_mails *j);
void report_buildset_free(struct buildset_mails *j);
/* reportmail.c: build `b`'s properties as stored (b->id), into b->props.  0 or -1. */
int report_load_props(struct db *db, struct build *b, char **cause);

#endif
