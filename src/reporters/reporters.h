/*
 * reporters: Buildbot's reporters (services), as a durable outbox.  The engine
 * decides what to report as a build starts or finishes (it renders the
 * generators' templates against the build) and hands each notification to
 * rep_enqueue, which stores it as an object_state row before it returns.  The
 * outbox then delivers it on the same libuv loop through the non-blocking HTTP
 * client (never waiting on the peer), removes the row once the peer took it,
 * retries what failed for a transient reason with exponential backoff and
 * jitter up to REP_MAX_AGE, and sends what a stopped master left undelivered
 * when the next one starts.  One rate limiter per token keeps under GitHub's
 * secondary limit and obeys Retry-After.
 *
 * GitHubStatusPush's statuses, HttpStatusPush's messages (Discord webhooks
 * among them) and GitHubCommentPush's comments; and IRC (irc.c, whose lines
 * are kept in memory, not in the outbox).  Uses util, db, http and config;
 * the engine calls it.  See docs/internals/reporters.md.
 */
#ifndef BBM_REPORTERS_H
#define BBM_REPORTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "util/util.h"
#include <uv.h>

struct db;
struct cfg;

/* The outbox's object in `objects` (Buildbot ignores a class it does not know). */
#define REP_OBJECT_NAME "bbmaster"
#define REP_OBJECT_CLASS "bbmaster.reporters.Outbox"
/* The rate limiters' windows at the last stop: one object_state row per limiter, named
   after a reporter that uses it, so that a restart does not start them afresh. */
#define REP_LIMITS_OBJECT_NAME "bbmaster"
#define REP_LIMITS_OBJECT_CLASS "bbmaster.reporters.Limits"
/* Notifications kept at most (in the database and in memory); past that new ones are
   logged and dropped. */
#define REP_OUTBOX_MAX 100000
/* How long a notification is retried (seconds) before it is dead-lettered. */
#define REP_MAX_AGE (24 * 3600)
/* Backoff: full jitter over [0, min(REP_BACKOFF_MAX_MS, REP_BACKOFF_BASE_MS * 2^(n-1))]. */
#define REP_BACKOFF_BASE_MS 5000
#define REP_BACKOFF_MAX_MS (30 * 60 * 1000)
/* GitHub's secondary limits on content-creating requests, per token, and concurrency. */
#define REP_RATE_PER_MINUTE 80
#define REP_RATE_PER_HOUR 500
/* The pause GitHub asks for after a rate-limit answer that names no time (seconds). */
#define REP_RATE_LIMIT_PAUSE 60
#define REP_CONCURRENCY 10
/* GitHub's bound on a status description, in characters. */
#define REP_DESCRIPTION_MAX 140

struct rep;

/* One GitHub commit status to post: POST {baseURL}/repos/{owner}/{repo}/statuses/{sha}. */
struct rep_status {
    const char *reporter; /* the reporter's name (its token and baseURL at delivery) */
    const char *owner, *repo, *sha;
    const char *state; /* pending, success, failure, error */
    const char *description, *target_url, *context;
};

/* Discord's bound on a message's `content`, and GitHub's on a comment, in characters. */
#define REP_DISCORD_CONTENT_MAX 2000
#define REP_COMMENT_MAX 65536
/* Pages of an issue's comments read, at most, to find a comment already posted. */
#define REP_COMMENT_PAGES_MAX 10

/* What a notification is: a commit status (rep_enqueue), a message (rep_enqueue_post) or a
   mail (rep_enqueue_mail). */
enum rep_kind { REP_KIND_STATUS, REP_KIND_HTTP, REP_KIND_COMMENT, REP_KIND_MAIL };

/* A message to post: HttpStatusPush's JSON body to serverUrl (?wait=true for a Discord
   webhook), or GitHubCommentPush's comment on an issue. */
struct rep_post {
    const char *reporter;
    enum rep_kind kind; /* REP_KIND_HTTP or REP_KIND_COMMENT */
    const char *path;   /* comment: /repos/{o}/{r}/issues/{n}/comments; http: "" */
    const char *body;   /* http: the JSON text; comment: the comment's text */
    const char *what;   /* for the log: "build 12 finished", "o/r#5 for build 12" */
};

/*
 * An outbox on `loop` writing through `db` (the engine's connection, used on the loop's
 * thread only).  What earlier masters left undelivered is loaded and sent.  Returns NULL
 * with *cause when the database cannot be read.  Freed with rep_free.
 */
struct rep *rep_new(uv_loop_t *loop, struct db *db, char **cause);
/* The reporters of `cfg` (copied: names, tokens, base URLs, verbose) replace the old. */
void rep_reconfig(struct rep *r, const struct cfg *cfg);
/*
 * Stores the status (the description cut to REP_DESCRIPTION_MAX characters) and queues
 * it; an older undelivered status of the same commit and context that is not on its way
 * is superseded.  0, or -1 with *cause (the database refused, or the outbox is full).
 */
int rep_enqueue(struct rep *r, const struct rep_status *st, char **cause);
/*
 * Stores the message and queues it.  A Discord `content` is trimmed to
 * REP_DISCORD_CONTENT_MAX characters and a comment to REP_COMMENT_MAX (each with a mark
 * saying so); a comment carries a hidden marker naming its record, looked for among the
 * issue's comments before a retry posts it again.  Messages of one reporter go one at a
 * time, in order.  0, or -1 with *cause.
 */
int rep_enqueue_post(struct rep *r, const struct rep_post *p, char **cause);
/* One mail to send through the reporter's SMTP relay. */
struct rep_mail {
    const char *reporter, *from, *message_id, *subject;
    const char *const *rcpts; /* envelope recipients (bare addresses) */
    size_t n_rcpts;
    const char *message; /* rep_mail_compose's, or NULL when file is given */
    const char *file;    /* its file, rep_mail_save's, made beforehand, or NULL */
    size_t file_bytes;   /* and the file's size */
};
/* Stores the mail (its message in a file of REP_MAIL_DIR, a given file taken over) and
   queues it; 0, or -1 with *cause (the given file is then removed). */
int rep_enqueue_mail(struct rep *r, const struct rep_mail *m, char **cause);
/* The mails' files the outbox holds, at most, in bytes; a mail past it is refused, as one
   past REP_OUTBOX_MAX. */
#define REP_OUTBOX_MAIL_BYTES (256 * 1024 * 1024)
/* The folder of the mails' files, in the master's base directory (its working directory).
   rep_new makes it, and removes the files that no row names. */
#define REP_MAIL_DIR "outbox"
#define REP_MAIL_NAME_MAX 32
/* Writes `message` compressed into a new file of REP_MAIL_DIR, its name into `name` and
   its size into *bytes (mailfile.c); 0, or -1 with *cause.  Any thread. */
int rep_mail_save(const char *message, char name[REP_MAIL_NAME_MAX], size_t *bytes, char **cause);
/* Whether `name` is a file's name as rep_mail_save makes them (no path in it). */
bool rep_mail_name_ok(const char *name);
/* The message in the file at `path` (at most REP_MAIL_MAX bytes, no NUL; an http_expand),
   or NULL with *cause. */
char *rep_mail_read(const char *path, char **cause);
/* Notifications stored and not yet delivered. */
size_t rep_pending(const struct rep *r);

/*
 * A batch (batch.c): notifications made on another thread than the outbox's, copied, and
 * enqueued later on the loop, in order, by rep_batch_enqueue (which logs, with `what`, each
 * one the outbox refused).
 */
struct rep_batch;
struct rep_batch *rep_batch_new(void);
void rep_batch_status(struct rep_batch *b, const struct rep_status *st);
void rep_batch_post(struct rep_batch *b, const struct rep_post *p);
void rep_batch_mail(struct rep_batch *b, const struct rep_mail *m);
void rep_batch_enqueue(struct rep *r, const struct rep_batch *b, const char *what);
void rep_batch_free(struct rep_batch *b);
/* Drops what is in flight (it stays stored) and frees the outbox; NULL is fine. */
void rep_free(struct rep *r);

/* ------------------------------------------------------------ policy (policy.c) */

enum rep_outcome {
    REP_DELIVERED, /* 2xx */
    REP_RETRY,     /* connection error, timeout, 5xx, 408, 429, GitHub's 403 rate limits */
    REP_DROP,      /* any other answer: the request itself is wrong */
};
/* What an SMTP server's last reply code means: 2xx delivered; none (no connection, a
   timeout) and 4xx retried; 5xx dropped. */
enum rep_outcome rep_classify_smtp(long code);
/* What an answer means (status 0: no answer); `retry_after` is the header's, or -1. */
enum rep_outcome rep_classify(long status, const char *body, long retry_after);
/* The wait before attempt `attempts` + 1 (attempts >= 1), `r01` a random number in [0, 1). */
uint64_t rep_backoff_ms(int attempts, double r01);

/* The wait a Retry-After of `seconds` asks for, within [REP_RETRY_AFTER_MIN,
   REP_RETRY_AFTER_MAX] seconds: "0" must not make a loop of requests, and a year is a
   peer's mistake. */
#define REP_RETRY_AFTER_MIN 1
#define REP_RETRY_AFTER_MAX 3600
uint64_t rep_retry_after_ms(long seconds);

/* Sliding windows of the last REP_RATE_PER_MINUTE sends of one token and, for a GitHub
   token, of the last REP_RATE_PER_HOUR; and a pause. */
struct rep_limiter {
    uint64_t sent[REP_RATE_PER_MINUTE]; /* ring of send times (ms) */
    size_t n, head;
    uint64_t hour[REP_RATE_PER_HOUR]; /* the same over an hour, when `hourly` */
    size_t hour_n, hour_head;
    bool hourly;
    uint64_t paused_until; /* Retry-After of a 403/429, a spent quota's reset */
    int in_flight;
};
/* 0 when a request may go at `now` (ms); else how many ms until one may. */
uint64_t rep_limiter_wait(const struct rep_limiter *l, uint64_t now);
/* A request goes at `now`. */
void rep_limiter_take(struct rep_limiter *l, uint64_t now);
/* The peer asked for a pause of `ms` from `now`. */
void rep_limiter_pause(struct rep_limiter *l, uint64_t now, uint64_t ms);
/* A request went at `at` (before `now`, in time order): an earlier master's, read back. */
void rep_limiter_sent(struct rep_limiter *l, uint64_t at, uint64_t now);
/* The ring of the minute's (or the hour's) send times: *ring, its oldest at *head (mod
   REP_RATE_PER_MINUTE or REP_RATE_PER_HOUR); returns how many it holds. */
size_t rep_limiter_times(const struct rep_limiter *l, bool hour, const uint64_t **ring,
                         size_t *head);
/*
 * The seconds a GitHub answer asks its token to wait, as GitHub's documentation says:
 * Retry-After on a 403 or 429; else, when x-ratelimit-remaining is "0", until
 * x-ratelimit-reset (epoch seconds; `now` is the time), at least 1; else a minute after a
 * rate-limit 403 or a 429.  -1 when it asks for no pause.
 */
long rep_github_pause(long status, const char *body, long retry_after, const char *remaining,
                      const char *reset, double now);

/*
 * The owner and repository of a source stamp as Buildbot's GitHubStatusPush finds them:
 * from `project` when it has a '/' ("python/cpython"), else from `repository` parsed as
 * a git URL (https://github.com/o/r.git, git@github.com:o/r).  Returns 0 with both
 * written (NUL-terminated, truncated to their sizes), or -1.
 */
int rep_github_repo(const char *project, const char *repository, char *owner, size_t osize,
                    char *repo, size_t rsize);
/* The length in bytes of the first `max` UTF-8 characters of `s`. */
size_t rep_utf8_prefix(const char *s, size_t max);

/* ------------------------------------------------------ messages posted (push.c) */

/* A Discord webhook URL: its path starts with /api/webhooks/. */
bool rep_is_discord(const char *url);
/* The URL a message goes to: a Discord webhook's with wait=true (a definite answer). */
char *rep_post_url(const char *url);
/* s, or its first characters and a mark of how many went, `max` characters in all. */
char *rep_trim_text(const char *s, size_t max);
/* The JSON text with a `content` longer than Discord's bound trimmed (malloc'd). */
char *rep_discord_body(const char *json_text);
/* The hidden marker of a comment's record, and the comment with it (trimmed to fit). */
char *rep_comment_marker(const char *record, double created_at);
char *rep_comment_body(const char *text, const char *marker);
/* A 429 body's `retry_after` (Discord: seconds, a fraction rounded up), or -1. */
long rep_retry_after_body(const char *body);
/* A header's seconds (Discord's X-RateLimit-Reset-After: "0.5"), rounded up, or -1. */
long rep_retry_after_header_seconds(const char *value);
/* A page of comments (GitHub's JSON list) holds the marker: 1, 0, or -1 (not a list). */
int rep_comments_have(const char *body, const char *marker);
/* The rel="next" URL of a Link header (malloc'd), or NULL. */
char *rep_link_next(const char *link);

/* ------------------------------------------- messages (message.c, template.c) */

/* Buildbot's results codes. */
enum {
    REP_RES_SUCCESS,
    REP_RES_WARNINGS,
    REP_RES_FAILURE,
    REP_RES_SKIPPED,
    REP_RES_EXCEPTION,
    REP_RES_RETRY,
    REP_RES_CANCELLED
};

/* BuildStatusGenerator's modes, as bits. */
#define REP_MODE_CHANGE (1u << 0)
#define REP_MODE_FAILING (1u << 1)
#define REP_MODE_PASSING (1u << 2)
#define REP_MODE_PROBLEM (1u << 3)
#define REP_MODE_WARNINGS (1u << 4)
#define REP_MODE_EXCEPTION (1u << 5)
#define REP_MODE_CANCELLED (1u << 6)
/*
 * The modes of `names`: `one_string` when the configuration gave a string, not a list
 * ("all" and "warnings" are then Buildbot's shortcuts).  0, or -1 with *cause in
 * Buildbot's words.
 */
int rep_modes_parse(const char *const *names, size_t n, bool one_string, unsigned *modes,
                    char **cause);
/* The previous build (getPreviousBuild, RETRY skipped): none, or one not finished. */
#define REP_PREV_NONE (-1)
#define REP_PREV_RUNNING (-2)
/* is_message_needed_by_results: `prev` the previous build's results, or REP_PREV_*. */
bool rep_mode_wants(unsigned modes, int results, int prev);
/* "change" and "problem" look at the previous build. */
bool rep_mode_needs_previous(unsigned modes);
/* Buildbot's statusToString: "success", ..., "cancelled"; "not finished" otherwise. */
const char *rep_result_name(int results);
/* get_detected_status_text and get_message_summary_text (malloc'd). */
char *rep_status_detected(unsigned modes, int results, int prev);
char *rep_summary(int results, const char *state_string);
/* The default MessageFormatter's results_style of a step's results. */
const char *rep_results_style(int results);
/* Buildbot 4.3's default subject and bodies, in bbmaster's template language. */
extern const char rep_default_subject[];
extern const char rep_default_body_plain[];
extern const char rep_default_body_html[];
/* MessageFormatterMissingWorker's default subject and bodies (Buildbot 4.3's). */
extern const char rep_missing_subject[];
extern const char rep_missing_body_plain[];
extern const char rep_missing_body_html[];

/* A mail as sent (headers and base64 body), at most REP_MAIL_MAX bytes; its attachments
   hold at most REP_MAIL_LOGS_MAX bytes of logs (before base64). */
#define REP_MAIL_MAX (5 * 1024 * 1024)
#define REP_MAIL_LOGS_MAX (2 * 1024 * 1024)
/* want_logs_content: a formatter's context holds at most the last REP_LOG_CONTENT_MAX bytes
   of each log (whole lines), and REP_BUILD_CONTENT_MAX of logs' content in all. */
#define REP_LOG_CONTENT_MAX (4 * 1024 * 1024)
#define REP_BUILD_CONTENT_MAX (16 * 1024 * 1024)
/* Between the parts of a mail with attachments: base64 and the headers never hold "--". */
#define REP_MAIL_BOUNDARY "===============bbmaster=="
struct rep_attachment {
    char *name; /* "step.log" */
    char *data;
    size_t len;
};
struct rep_mail_parts {
    const char *from, *subject, *body;
    bool html;
    const char *date;                                 /* RFC 5322 */
    const char *message_id;                           /* "<...@...>" */
    const char *const *to, *const *cc, *const *extra; /* extra: "Name: value" (any text) */
    size_t n_to, n_cc, n_extra;
    const struct rep_attachment *att; /* logs, as multipart/mixed */
    size_t n_att;
};
/* Buildbot's MailNotifier.createEmail and processRecipients, as text with CRLF line ends;
   NULL with *cause (a newline in the subject, past REP_MAIL_MAX). */
char *rep_mail_compose(const struct rep_mail_parts *p, char **cause);
/* Buildbot's VALID_EMAIL: "a@b.c" or "Name <a@b.c>" (the domain has a dot). */
bool rep_mail_valid(const char *s);
/* formatAddress: "Name <a@b>" as "\"Name\" <a@b>" (RFC 2047 when not ASCII), "a@b" as it is. */
char *rep_mail_address(const char *addr);

/* Bounds of a template's source and of what it renders. */
#define REP_TMPL_MAX (64 * 1024)
#define REP_TMPL_OUT_MAX (1024 * 1024)
struct rep_tmpl;
/* Compiles `src`; NULL with *cause ("line N: ...") when it is not bbmaster's language. */
struct rep_tmpl *rep_tmpl_compile(const char *src, char **cause);
/* The text of `t` against the JSON object `ctx`; NULL with *cause past REP_TMPL_OUT_MAX. */
char *rep_tmpl_render(const struct rep_tmpl *t, const json_t *ctx, char **cause);
void rep_tmpl_free(struct rep_tmpl *t);

/* ------------------------------------------------------- IRC (irc.c, ircproto.c) */

/*
 * Buildbot's IRC reporter: one bot per bbm.reporters.irc, on the outbox's loop.  The
 * engine decides what is said (rep_irc_wants, rep_irc_*_text) and hands the text to
 * rep_irc_notify; the bot queues it (bounded) and sends it to its chats whose events want it
 * within the line rate, reconnecting with backoff.  The lines live in memory only, as
 * in Buildbot: a restart loses what was queued.
 */
/* A line as RFC 1459/2812 bound it: 512 bytes with the CR LF. */
#define REP_IRC_LINE_MAX 512
#define REP_IRC_PARAMS_MAX 15
/* Lines queued per bot at most; past that they are counted and one line says how many. */
#define REP_IRC_QUEUE_MAX 256
/* The line rate: a burst of REP_IRC_BURST lines, then one per REP_IRC_LINE_MS. */
#define REP_IRC_BURST 4
#define REP_IRC_LINE_MS 2000
/* Reconnect backoff: [d/2, d] with d = min(REP_IRC_BACKOFF_MAX_MS, BASE * 2^(n-1)). */
#define REP_IRC_BACKOFF_BASE_MS 2000
#define REP_IRC_BACKOFF_MAX_MS (5 * 60 * 1000)
/* Registration must finish within this; a silent server gets a PING after IDLE, and is
   dropped when it does not answer within the same time again. */
#define REP_IRC_REGISTER_MS (60 * 1000)
#define REP_IRC_IDLE_MS (120 * 1000)
/* The text of one PRIVMSG is cut to this many bytes (at a UTF-8 boundary), leaving room
   for the prefix the server puts in front when it relays the line. */
#define REP_IRC_TEXT_MAX 400

/* One line received, split as RFC 2812 says: [:prefix] command params [:trailing]. */
struct rep_irc_msg {
    char buf[REP_IRC_LINE_MAX + 1];
    const char *prefix; /* NULL without one */
    const char *command;
    const char *params[REP_IRC_PARAMS_MAX];
    int n_params;
};
/* Parses `line` (without CR LF, `len` bytes).  0, or -1 when it is empty, too long, has a
   NUL, CR or LF, or has no command. */
int rep_irc_parse(const char *line, size_t len, struct rep_irc_msg *m);

/* notify_events, as bits: Buildbot's names and the deprecated "successToFailure" kind. */
#define REP_IRC_EV_STARTED (1u << 0)
#define REP_IRC_EV_FINISHED (1u << 1)
#define REP_IRC_EV_SUCCESS (1u << 2)
#define REP_IRC_EV_WARNINGS (1u << 3)
#define REP_IRC_EV_FAILURE (1u << 4)
#define REP_IRC_EV_EXCEPTION (1u << 5)
#define REP_IRC_EV_CANCELLED (1u << 6)
#define REP_IRC_EV_PROBLEM (1u << 7)
#define REP_IRC_EV_RECOVERY (1u << 8)
#define REP_IRC_EV_WORSE (1u << 9)
#define REP_IRC_EV_BETTER (1u << 10)
#define REP_IRC_EV_WORKER (1u << 11)
/* prevToNow: bit 16 + 4 * prev + now, prev and now in success, warnings, failure, exception. */
#define REP_IRC_EV_TO_SHIFT 16
/* The bit of one event name; 0 when Buildbot would not take it. */
uint32_t rep_irc_event(const char *name);
/* The names of the events of `mask`, sorted as Python sorts them, joined by `sep`
   (malloc'd; "" for none). */
char *rep_irc_event_names(uint32_t mask, const char *sep);
/* notify_for_finished: `prev` the results of build number - 1, REP_PREV_NONE when there is
   none, REP_PREV_RUNNING when it is not finished. */
bool rep_irc_wants(uint32_t events, int results, int prev);
/* "Build [#N](URL) of `B` started." and the finished line as words.py words them, in mIRC
   colours with `colors`.  malloc'd. */
char *rep_irc_started_text(long long number, const char *url, const char *builder);
char *rep_irc_finished_text(long long number, const char *url, const char *builder, int results,
                            const char *state_string, bool colors);
/* The length of the longest prefix of `s` (of `len` bytes) within `max` bytes that does not
   cut a UTF-8 character. */
size_t rep_irc_cut(const char *s, size_t len, size_t max);

/* The lines waiting to be said, within the line rate: a token bucket of REP_IRC_BURST
   refilled by one every REP_IRC_LINE_MS; at most REP_IRC_QUEUE_MAX lines, the rest only
   counted in `dropped`. */
struct rep_irc_queue {
    char *lines[REP_IRC_QUEUE_MAX];
    size_t head, n, dropped;
    double tokens;
    uint64_t refill_at;
};
void rep_irc_queue_init(struct rep_irc_queue *q, uint64_t now);
/* Takes `line` (malloc'd); a full queue frees it and counts it in q->dropped. */
void rep_irc_queue_push(struct rep_irc_queue *q, char *line);
/* The next line when the rate lets one go at `now` (the caller frees it), else NULL. */
char *rep_irc_queue_pop(struct rep_irc_queue *q, uint64_t now);
/* The ms from `now` until a line may go: 0 when one may, or when there is none. */
uint64_t rep_irc_queue_wait(const struct rep_irc_queue *q, uint64_t now);
/* Frees what waits. */
void rep_irc_queue_clear(struct rep_irc_queue *q);

/* ------------------------------------------------------- the bot's commands (ircbot.c) */

/* Arguments of one command at most (shlex-split; a line holds at most 255 anyway). */
#define REP_IRC_ARGS_MAX 32
/* Lines of one answer at most (after cutting at REP_IRC_TEXT_MAX); the rest are counted in
   a last line "(N more lines not shown)". */
#define REP_IRC_REPLY_LINES_MAX 30
/* Commands of one nick: a burst of REP_IRC_CMD_BURST, then one per REP_IRC_CMD_MS; more are
   ignored (logged once).  Nicks followed per bot at most (the idlest is forgotten). */
#define REP_IRC_CMD_BURST 5
#define REP_IRC_CMD_MS 4000
#define REP_IRC_NICKS_MAX 64
/* Recent changes `list changes` shows at most (Buildbot's "all" is 100). */
#define REP_IRC_CHANGES_MAX 100
/* Chats a bot keeps besides its configured ones at most (private chats muted or given
   events by `notify`, chats of the saved state; past it the command is refused, logged), and
   commands waiting for a channel's NAMES to know whether their nick is an operator (past it
   the oldest is dropped, logged). */
#define REP_IRC_PRIVATE_CHATS_MAX 64
#define REP_IRC_OP_CHECKS_MAX 16
/* Builds one chat watches at most (`watch`; past it the oldest is forgotten). */
#define REP_IRC_WATCH_MAX 16

/* The text said to the bot: privately all of it, in a channel what follows "NICK:" or
   "NICK," (case-insensitive), its leading spaces skipped; NULL when it is not for the bot
   (or is a CTCP message). */
const char *rep_irc_addressed(const char *text, const char *nick, bool private_chat);
/* shlex.split (POSIX mode) of `s` into `out` (strlen(s) + 1 bytes) and `argv` (at most
   `max`): 0 and *argc, or -1 with *error: Python's "No closing quotation", "No escaped
   character", or "Too many arguments". */
int rep_irc_split(const char *s, char *out, char **argv, int max, int *argc, const char **error);

struct cfg_irc_acl;
/* Buildbot's getCommandMethod: whether `nick` (lower-case) may run `command` (lower-case)
   under `authz` (none: the harmless commands for all, the dangerous ones (force, stop, join,
   leave) for nobody). */
bool rep_irc_allowed(const struct cfg_irc_acl *authz, size_t n, const char *command,
                     const char *nick);

/* A command the engine answers (status, last, list, force, stop, watch), or the chat's own
   (mute, unmute, notify, join, leave), as the bot received it. */
struct rep_irc_request {
    const char *bot;     /* the reporter's name */
    const char *nick;    /* who said it, lower-case (Buildbot's user_id) */
    const char *user;    /* describeUser: "nick", or "nick on #channel" */
    const char *channel; /* lower-case; NULL: a private chat */
    long long *watched;  /* watch: the builds the chat is to hear of, at most REP_IRC_WATCH_MAX */
    size_t *n_watched;
    const char *command; /* lower-case */
    char **argv;         /* its arguments, shlex-split */
    int argc;
};
/* Answers a request: the text to say (malloc'd, lines separated by '\n') or NULL. */
typedef char *(*rep_irc_handler)(void *arg, const struct rep_irc_request *req);

/*
 * What the bot says to `message` (already addressed to it, see rep_irc_addressed) from `nick`
 * in `channel` (NULL: privately): words.py's handleMessage with its commands help, commands,
 * hello, version and dance answered here, status, last, list, force, stop, watch and shutdown
 * by `h`, mute, unmute, notify, join, leave, destroy and hustle by the chat's handler; the
 * refusals (authz) and usage errors in Buildbot's words.
 * malloc'd text (lines separated by '\n') or NULL: nothing to say.
 */
struct rep_irc_said {
    const char *bot;     /* the reporter's name */
    const char *nick;    /* as the server gave it */
    const char *channel; /* NULL: a private message */
    const char *message;
    rep_irc_handler chat; /* the chat's own commands (irc.c); NULL: "Something bad happened" */
    void *chat_arg;
    long long *watched; /* where `watch` puts the builds it watches (REP_IRC_WATCH_MAX); NULL:
                           none */
    size_t *n_watched;
};
/* A RPL_NAMREPLY's names (space-separated, each with its channel prefixes) hold `nick` as a
   channel operator: irc.py's getChannelOps takes the prefixes '@', '&', '~' and '%'. */
bool rep_irc_names_op(const char *names, const char *nick);
/* irc.py's op_required: whether `nick` (lower-case) must be a channel operator to `command`
   (mute, notify) in a channel: unless authz lists the nick under that very command. */
bool rep_irc_op_required(const struct cfg_irc_acl *authz, size_t n, const char *command,
                         const char *nick);
/* irc.py's words for mute and unmute. */
#define REP_IRC_MUTED "Shutting up for now."
#define REP_IRC_UNMUTED "I'm baaaaaaaaaaack!"
#define REP_IRC_NOT_MUTED "No one had told me to be quiet, but it's the thought that counts, right?"
char *rep_irc_command(const struct rep_irc_said *said, const struct cfg_irc_acl *authz,
                      size_t n_authz, rep_irc_handler h, void *arg);
/* The lines of a greeting chosen at random, for `hello`. */
const char *rep_irc_greeting(void);

/* Buildbot's util.fuzzyInterval ("a moment", "40 seconds", "3 hours", ...) into buf. */
const char *rep_irc_fuzzy(long long seconds, char *buf, size_t cap);
/* irc.py's format_build_status: results_descriptions ("completed successfully") or, `brief`,
   short_results_descriptions (", Success"), in mIRC colours with `colors`, into buf. */
const char *rep_irc_result_text(int results, bool brief, bool colors, char *buf, size_t cap);

/* `force build ...`: Twisted's ForceOptions (--builder, --codebase, --branch, --revision,
   --project, --reason, --props, each as --opt=V or --opt V, a unique prefix taken, before
   the builder and the reason's words).  Strings point into argv, `reason` is malloc'd
   (NULL: none). */
struct rep_irc_force {
    const char *builder, *codebase, *branch, *revision, *project, *props;
    char *reason;
};
/* 0, or -1 with *reply: what the bot says (a usage error; "Something bad happened (see
   logs)" with the reason in *log).  Both malloc'd. */
int rep_irc_force_parse(int argc, char **argv, struct rep_irc_force *f, char **reply, char **log);
/* Buildbot's checks of the branch, revision and properties (its default `validation`
   patterns): NULL and the properties as [[name, value, "Force Build Chat"], ...] in *props,
   or what the bot says ("Sorry, bad branch 'x'", ...; *log set when it is "Something bad
   happened"). */
char *rep_irc_force_check(const struct rep_irc_force *f, json_t **props, char **log);
void rep_irc_force_clear(struct rep_irc_force *f);
/* The usage of `force`, for its "Try '...'" */
extern const char rep_irc_force_usage[];

/* Per-nick command rate: a token bucket each. */
struct rep_irc_rates {
    struct {
        char nick[64];
        double tokens;
        uint64_t at;
        bool warned;
    } e[REP_IRC_NICKS_MAX];
    size_t n;
};
/* 1: `nick` may give a command at `now`; 0: over its rate, first time in this stretch (to
   log); -1: over its rate again. */
int rep_irc_rate_take(struct rep_irc_rates *r, const char *nick, uint64_t now);

struct rep_irc;
struct cfg_irc;
/* The bots of a configuration (copied); a bot whose parameters changed quits and a new one
   connects, as Buildbot's reconfig does. */
struct rep_irc *rep_irc_new(uv_loop_t *loop);
void rep_irc_reconfig(struct rep_irc *ri, const struct cfg *cfg);
/* Queues `text` (its lines) for each chat of the bot named `name` that is not muted and
   whose notify_events (a mask of REP_IRC_EV_*) `wants`: its channels and pm_to_nicks (the
   configured notify_events), and the chats `notify on` or the saved state added. */
typedef bool (*rep_irc_wants_fn)(uint32_t events, void *arg);
/* `buildid` (-1: none) is a build that finished: the chats that `watch` it hear it too, once,
   whatever their events. */
void rep_irc_notify(struct rep_irc *ri, const char *name, const char *text, rep_irc_wants_fn wants,
                    void *arg, long long buildid);
/* The chats' notify_events as Buildbot's IrcStatusBot keeps them (state "notify_events" of
   the object named after the bot's nick, class REP_IRC_STATE_CLASS: [[chat, [event, ...]],
   ...]): `load` gives the JSON text (malloc'd) or NULL, at each sign-on; `save` stores it
   after each `notify on|off`.  Called on the loop. */
#define REP_IRC_STATE_CLASS "buildbot.reporters.irc.IrcStatusBot"
typedef char *(*rep_irc_state_load)(void *arg, const char *nick);
typedef void (*rep_irc_state_save)(void *arg, const char *nick, const char *json);
void rep_irc_set_state(struct rep_irc *ri, rep_irc_state_load load, rep_irc_state_save save,
                       void *arg);
/* Who answers the bots' status, last, list, force, stop, watch and shutdown (NULL: nobody; they are
   then answered "Something bad happened (see logs)").  Called on the loop, at once. */
void rep_irc_set_handler(struct rep_irc *ri, rep_irc_handler h, void *arg);
/* The IRC bots of the outbox `r`. */
struct rep_irc *rep_irc_of(struct rep *r);
/* Says QUIT where it can and closes the connections; NULL is fine. */
void rep_irc_free(struct rep_irc *ri);

#endif
