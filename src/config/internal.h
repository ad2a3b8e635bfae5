/*
 * Private to src/config: the error list that every check appends to, the
 * parameter tables the `bbm` constructors validate against, and the pieces
 * lua.c, bbm.c, validate.c and settings.c share.
 */
#ifndef BBM_CONFIG_INTERNAL_H
#define BBM_CONFIG_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <time.h>

#include "config/config.h"
#include "util/util.h"

/* Fields every bbm constructor adds to the table it returns. */
#define CFG_FILE "_file"
#define CFG_LINE "_line"

/* Every error of one load, "FILE:LINE: sentence\n" each; kept in the Lua registry. */
struct cfg_errors {
    struct buf text;
    size_t count;
};

/* The error list of the state (registered by cfg_lua_new). */
struct cfg_errors *cfg_errors_of(lua_State *L);
void cfg_error(lua_State *L, const char *file, int line, const char *fmt, ...) UTIL_PRINTF(4, 5);
/* The file and line of the Lua code that called the running C function. */
void cfg_caller(lua_State *L, char *file, size_t size, int *line);
/* The string or list of strings at `field` of the table at `idx` as a malloc'd vector of
 *n copies; NULL when absent or, unless `empty_given`, when no string is in it. */
char **cfg_string_list(lua_State *L, int idx, const char *field, size_t *n, bool empty_given);
/* " Did you mean 'X'?" for the nearest of `names` (NULL-terminated), or "". */
void cfg_suggest(const char *word, const char *const *names, char *out, size_t size);

/* loadwatch.c: a timer on the thread's CPU time that, once `cpu_ms` are used, sets *fired and
   installs `hook` as a count hook of 1 on L (from a signal handler).  cfg_watch_start returns
   false, and nothing is on, when the timer cannot be made. */
struct cfg_watch {
    timer_t timer;
    sigset_t mask; /* the thread's signal mask before */
    bool on;
};
bool cfg_watch_start(struct cfg_watch *w, lua_State *L, lua_Hook hook, volatile sig_atomic_t *fired,
                     unsigned cpu_ms);
void cfg_watch_stop(struct cfg_watch *w);

/* plain.c: the configuration's tables stay plain (no metatable but bbm's own, which
   cfg_own_metatable marks).  In validation: every table reachable from the value at `idx` (the
   configuration's key `name`, at file:line) without a metatable but bbm's own, else an error;
   remembered as the configuration's, which setmetatable then refuses (cfg_frozen). */
void cfg_check_plain(lua_State *L, int idx, const char *name, const char *file, int line);
bool cfg_frozen(lua_State *L, int idx);
/* The results of a function at first..first+n-1: NULL when plain, else what they hold. */
const char *cfg_plain_result(lua_State *L, int first, int n);

/* lua.c: adds `instructions` to what the running call (or the load) has spent, for work C
   code does on its behalf (bbm.re's matching); true when that spends its budget within a
   protected call (the load, cfg_lua_call), and the next Lua instruction then raises the
   budget's error. */
bool cfg_lua_charge(lua_State *L, size_t instructions);
/* luare.c: pushes the bbm.re table (Python's `re` over PCRE2). */
void cfg_push_re(lua_State *L);
/* bbm.c: pushes the `bbm` module table. */
int cfg_open_bbm(lua_State *L);
/* locks.c: pushes the bbm.locks table (master, worker). */
void cfg_push_locks(lua_State *L);
/* A bbm.locks.* lock, and a lock:access(...), at `idx`. */
bool cfg_is_lock(lua_State *L, int idx);
bool cfg_is_lock_access(lua_State *L, int idx);
/* "bbm.params.string" for the _kind "param.string": the constructor that makes it, or NULL. */
const char *cfg_kind_display(const char *kind);
/* messages.c: Lua's print, bbm.log.msg and bbm.log.err, and where they write: stderr, the
   master's log, or nowhere (cfg_messages_to). */
int cfg_print(lua_State *L);
int cfg_log_msg(lua_State *L);
int cfg_log_err(lua_State *L);
enum cfg_messages { CFG_MESSAGES_STDERR, CFG_MESSAGES_LOG, CFG_MESSAGES_DROPPED };
void cfg_messages_to(lua_State *L, enum cfg_messages where);
/* settings.c: bbm.yaml.load(path). */
int cfg_yaml_load(lua_State *L);
/* validate.c: reads the returned table at the top of the stack into cfg. */
void cfg_read_model(lua_State *L, struct cfg *cfg, const char *path, const char *source);
/* reporters.c: the `services` key of the table at `top` into cfg->reporters; freed by
   cfg_free_reporters. */
void cfg_read_services(lua_State *L, struct cfg *cfg, int top, const char *path, int key_line);
/* reporters_push.c: HttpStatusPush's serverUrl, headers and auth; MessageFormatterFunction;
   the default generators of HttpStatusPush and GitHubCommentPush. */
struct cfg_reporter;
struct cfg_formatter;
void cfg_read_http_push(lua_State *L, int idx, struct cfg_reporter *rep, const char *file,
                        int line);
struct cfg_formatter *cfg_read_function_formatter(lua_State *L, int idx, const char *file,
                                                  int line);
void cfg_push_default_generators(struct cfg_reporter *rep);
/* A formatter's want_logs_content (the table at `idx`) into f; an error at FILE:LINE. */
void cfg_read_logs_content(lua_State *L, int idx, struct cfg_formatter *f, const char *file,
                           int line);
void cfg_free_reporters(struct cfg *cfg);
/* irc.c: a bbm.reporters.irc at `idx` into cfg->ircs (room for it is there); freed by
   cfg_free_irc. */
void cfg_read_irc(lua_State *L, int idx, struct cfg *cfg, const char *file, int line);
void cfg_free_irc(struct cfg *cfg);

/* The memory of a Lua state (luapool.c): cfg_pool_realloc is a lua_Alloc's work (osize is
   Lua's); cfg_pool_free releases every block at once, after lua_close. */
struct cfg_pool;
struct cfg_pool *cfg_pool_new(void);
void *cfg_pool_realloc(struct cfg_pool *p, void *ptr, size_t osize, size_t nsize);
void cfg_pool_free(struct cfg_pool *p);

#endif
