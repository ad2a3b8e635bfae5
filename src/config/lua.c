/*
 * Running master.lua: a fresh Lua 5.4 state per load, with a memory cap, a
 * budget (an endless loop in a config is an error, not a hung master),
 * `require "bbm"` preloaded and package.path set to the config's directory.
 * A Lua error is reported with its traceback; otherwise the returned table
 * goes to validate.c, in a protected call of its own (reading the table may
 * run the file's metamethods), and the state stays with the config so its Lua
 * functions remain callable.
 *
 * The file's own run has MAX_LOAD_CPU_MS of its thread's CPU time, watched by
 * a timer (loadwatch.c) rather than by a count hook, which slows every
 * instruction.  Everything else counts instructions: at run time every call
 * into the file's functions goes through cfg_lua_call, which gives each call a
 * budget of its own: MAX_CALL_INSTRUCTIONS and the state's memory cap.  The
 * count hook is installed for the state's life but the file's run (it costs
 * nothing while C code runs) and counts the instructions of every thread:
 * coroutines are created with a hook of their own, every CO_HOOK_EVERY
 * instructions, and pay that much up front, so that many short coroutines
 * cannot run unseen between two checks.  The hook raises its error only inside
 * a protected call (the file's run, validation, cfg_lua_call): a metamethod
 * that C code reaches outside one is counted, never turned into an abort.  What
 * would get around it is taken away: debug.sethook and the rest of the debug
 * library but traceback and getinfo, and __gc finalizers, which Lua runs with
 * hooks off whenever the collector does (setmetatable refuses a metatable with
 * __gc, and files' metatable cannot be read).  setmetatable also refuses bbm's
 * objects and, once validation has seen them, the configuration's tables, which
 * the engine reads from C at run time, unprotected (plain.c); and a call's
 * results must be as plain.
 */
#include "config/internal.h"

#include <assert.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_CONFIG_BYTES = 16 << 20,
    HOOK_EVERY = 100000,  /* instructions between checks on the main thread */
    CO_HOOK_EVERY = 1000, /* on a coroutine, which pays this much when created */
    MAX_ERRORS = 200,     /* errors reported; the rest are counted */
    WHERE_MAX = 256,
};
#define MAX_LUA_MEMORY ((size_t)512 << 20)
#define MAX_INSTRUCTIONS ((size_t)500000000) /* a load's coroutines: a few seconds */
#define MAX_LOAD_CPU_MS 5000u /* the file's own run, on its main thread (loadwatch.c) */
#define MAX_CALL_INSTRUCTIONS ((size_t)10000000) /* one run-time call: tens of ms */
/* What C code may add to the state between calls, past the cap, so that pushing a call's
   arguments cannot fail when a function left the state at its cap. */
#define C_RESERVE ((size_t)16 << 20)

static const char errors_key = 'e';

struct lua_budget {
    struct cfg_pool *pool; /* where the state's memory comes from */
    size_t used;
    size_t max;                      /* the cap of the configuration's Lua code */
    size_t limit;                    /* the allocator's: max, or max + C_RESERVE between calls */
    size_t spent;                    /* instructions counted by the hook */
    size_t max_spent;                /* the budget of the load, or of one run-time call */
    bool exceeded;                   /* spent went past max_spent: every instruction fails */
    volatile sig_atomic_t timed_out; /* the file's run used its CPU time (loadwatch.c) */
    int depth;                       /* cfg_lua_call nesting */
    int protected;                   /* protected calls the budget may raise its error in */
    char where[WHERE_MAX];           /* FILE:LINE the code was at when it ran out */
};

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_budget *b = ud;
    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        cfg_pool_realloc(b->pool, ptr, osize, 0);
        b->used -= osize;
        return NULL;
    }
    if (nsize > osize && b->used + (nsize - osize) > b->limit)
        return NULL;
    void *p = cfg_pool_realloc(b->pool, ptr, osize, nsize);
    if (p != NULL)
        b->used = b->used - osize + nsize;
    return p;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

static struct lua_budget *budget_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* The budget is spent: from now on every instruction of every thread raises the error (in
   a protected call), so that code catching it with pcall cannot go on looping. */
static void exceed(lua_State *L, struct lua_budget *b, lua_Debug *ar)
{
    if (!b->exceeded) {
        b->exceeded = true;
        lua_getinfo(L, "Sl", ar);
        snprintf(b->where, sizeof b->where, "%s:%d",
                 ar->source[0] == '@' ? ar->source + 1 : ar->short_src, ar->currentline);
    }
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    if (b->protected == 0)
        return;
    lua_pushfstring(L, "%s: the configuration ran for too long (an endless loop?)", b->where);
    lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct lua_budget *b = budget_of(L);
    if (!b->exceeded && !b->timed_out) {
        int count = lua_gethookcount(L);
        if (count == 1) { /* a thread an old call's spent budget stopped */
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, CO_HOOK_EVERY);
            return;
        }
        b->spent += (size_t)count;
        if (b->spent <= b->max_spent)
            return;
    }
    exceed(L, b, ar);
}

bool cfg_lua_charge(lua_State *L, size_t instructions)
{
    struct lua_budget *b = budget_of(L);
    b->spent += instructions;
    if (b->exceeded || b->spent <= b->max_spent)
        return b->exceeded && b->protected > 0;
    b->exceeded = true;
    int line;
    cfg_caller(L, b->where, sizeof b->where, &line);
    size_t n = strlen(b->where);
    snprintf(b->where + n, sizeof b->where - n, ":%d", line);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1); /* the next instruction raises it */
    return b->protected > 0; /* outside a protected call the error is never raised */
}

/* A new coroutine gets a hook of its own and pays for its first check up front. */
static void charge_thread(lua_State *L, lua_State *co)
{
    struct lua_budget *b = budget_of(L);
    lua_sethook(co, budget_hook, LUA_MASKCOUNT, b->exceeded ? 1 : CO_HOOK_EVERY);
    b->spent += CO_HOOK_EVERY;
    if (b->spent > b->max_spent) {
        lua_Debug ar;
        if (lua_getstack(L, 1, &ar))
            exceed(L, b, &ar);
    }
}

/* coroutine.create and coroutine.wrap (the originals are upvalue 1), charged. */
static int co_create(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    if (lua_isthread(L, -1))
        charge_thread(L, lua_tothread(L, -1));
    return 1;
}

static int co_wrap(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    if (lua_getupvalue(L, -1, 1) != NULL) { /* the wrapping closure's thread */
        if (lua_isthread(L, -1))
            charge_thread(L, lua_tothread(L, -1));
        lua_pop(L, 1);
    }
    return 1;
}

static void charge_coroutines(lua_State *L)
{
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "create");
    lua_pushcclosure(L, co_create, 1);
    lua_setfield(L, -2, "create");
    lua_getfield(L, -1, "wrap");
    lua_pushcclosure(L, co_wrap, 1);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
}

/* A fresh budget of `instructions`, and the cap for Lua code (or, `between` calls, the cap
   and the reserve of C code). */
static void budget_reset(lua_State *L, struct lua_budget *b, size_t instructions, bool between)
{
    b->spent = 0;
    b->max_spent = instructions;
    b->exceeded = false;
    b->timed_out = 0;
    b->where[0] = '\0';
    b->limit = between ? b->max + C_RESERVE : b->max;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

struct cfg_errors *cfg_errors_of(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &errors_key);
    struct cfg_errors *e = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return e;
}

void cfg_error(lua_State *L, const char *file, int line, const char *fmt, ...)
{
    struct cfg_errors *e = cfg_errors_of(L);
    if (++e->count > MAX_ERRORS) { /* a constructor called in an endless recursion, say */
        if (e->count == MAX_ERRORS + 1)
            buf_printf(&e->text, "%s:%d: more errors follow; only the first %d are shown\n", file,
                       line, MAX_ERRORS);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    buf_printf(&e->text, "%s:%d: %s\n", file, line, msg);
    free(msg);
}

void cfg_caller(lua_State *L, char *file, size_t size, int *line)
{
    lua_Debug ar;
    snprintf(file, size, "?");
    *line = 0;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            util_strcopy(file, size, ar.source[0] == '@' ? ar.source + 1 : ar.short_src);
            *line = ar.currentline;
            return;
        }
    }
}

static int lower_distance(const char *a, const char *b)
{
    char la[65], lb[65];
    size_t i;
    for (i = 0; a[i] != '\0' && i < 64; i++)
        la[i] = (char)(a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i]);
    la[i] = '\0';
    for (i = 0; b[i] != '\0' && i < 64; i++)
        lb[i] = (char)(b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i]);
    lb[i] = '\0';
    return util_edit_distance(la, lb);
}

void cfg_suggest(const char *word, const char *const *names, char *out, size_t size)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (; *names != NULL; names++) {
        int d = lower_distance(word, *names);
        if (d < best_d)
            best_d = d, best = *names;
    }
    int len = (int)strlen(word);
    if (best != NULL && best_d <= (len < 6 ? 2 : 3))
        snprintf(out, size, "; did you mean '%s'?", best);
    else
        out[0] = '\0';
}

static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = luaL_typename(L, 1);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Lua's setmetatable, without finalizers, and not on bbm's objects: the master reads those
   from C while builds run, outside any protected call, where a metamethod's error would
   abort it. */
static int set_metatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE && (lua_pushliteral(L, "__gc"), lua_rawget(L, 2)) != LUA_TNIL)
        return luaL_error(L, "setmetatable: __gc finalizers are not supported in master.lua");
    if ((lua_pushliteral(L, CFG_KIND), lua_rawget(L, 1)) != LUA_TNIL)
        return luaL_error(L, "setmetatable: a bbm object's metatable cannot be changed");
    if (cfg_frozen(L, 1))
        return luaL_error(L, "setmetatable: a table of the configuration cannot be given a "
                             "metatable: the master reads it as it is");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* debug with traceback and getinfo only, setmetatable without __gc, files' metatable
   hidden (its __gc could be replaced); print goes where messages go (messages.c) and
   io.write to stderr: stdout is checkconfig's, --dump's JSON. */
static void restrict_libs(lua_State *L)
{
    lua_getglobal(L, "debug");
    lua_createtable(L, 0, 2);
    lua_getfield(L, -2, "traceback");
    lua_setfield(L, -2, "traceback");
    lua_getfield(L, -2, "getinfo");
    lua_setfield(L, -2, "getinfo");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "debug");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_insert(L, -2);
    lua_setfield(L, -2, "debug");
    lua_pop(L, 2);
    lua_register(L, "setmetatable", set_metatable);
    lua_register(L, "print", cfg_print);
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "output");
    lua_getfield(L, -2, "stderr");
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE) {
        lua_pushliteral(L, "file");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}

static int open_bbm(lua_State *L)
{
    return cfg_open_bbm(L);
}

static void set_package_path(lua_State *L, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash != NULL ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_bbm);
    lua_setfield(L, -2, "bbm");
    lua_pop(L, 2);
    free(dir);
}

static lua_State *new_state(struct cfg_errors *errors, struct lua_budget *budget)
{
    lua_State *L = lua_newstate(capped_alloc, budget);
    if (L == NULL)
        return NULL;
    luaL_openlibs(L);
    restrict_libs(L);
    charge_coroutines(L);
    lua_pushlightuserdata(L, errors);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errors_key);
    budget_reset(L, budget, budget->max_spent, false);
    return L;
}

/* Runs the chunk at the top (under its message handler) with the CPU-time watch in place of
   the count hook on the main thread, when the watch can be set and `cpu_ms` is not 0. */
static int run_watched(lua_State *L, unsigned cpu_ms)
{
    struct lua_budget *b = budget_of(L);
    if (cpu_ms == 0)
        return lua_pcall(L, 0, 1, -2);
    struct cfg_watch w;
    lua_sethook(L, NULL, 0, 0);
    if (!cfg_watch_start(&w, L, budget_hook, &b->timed_out, cpu_ms))
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int rc = lua_pcall(L, 0, 1, -2);
    cfg_watch_stop(&w);
    if (!b->exceeded && !b->timed_out)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return rc;
}

/* Runs the file; leaves its result on the stack.  Returns 0 or -1 (error recorded). */
static int run_file(lua_State *L, const char *path, const char *source, size_t len, unsigned cpu_ms)
{
    struct cfg_errors *e = cfg_errors_of(L);
    char *chunk = xasprintf("@%s", path);
    lua_pushcfunction(L, message_handler);
    int rc = luaL_loadbufferx(L, source, len, chunk, "t");
    free(chunk);
    struct lua_budget *b = budget_of(L);
    b->protected ++;
    if (rc == LUA_OK)
        rc = run_watched(L, cpu_ms);
    b->protected --;
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        buf_printf(&e->text, "%s\n", msg != NULL ? msg : "error in the configuration");
        e->count++;
        return -1;
    }
    if (!lua_istable(L, -1)) {
        buf_printf(&e->text, "%s:1: the file must return a table (the configuration), not %s\n",
                   path, luaL_typename(L, -1));
        e->count++;
        return -1;
    }
    return 0;
}

struct model_args {
    struct cfg *cfg;
    const char *path, *text;
};

static int read_model_call(lua_State *L)
{
    const struct model_args *a = lua_touserdata(L, 1);
    lua_remove(L, 1); /* the configuration's table is now the top */
    cfg_read_model(L, a->cfg, a->path, a->text);
    return 0;
}

/* Validates the table at the top.  Reading it may run the file's own metamethods (an __index
   that raises an error or loops), so this too is a protected call with the budget in force:
   what goes wrong is the configuration's error, never an abort or a hang. */
static void read_model(lua_State *L, struct cfg *cfg, const char *path, const char *text)
{
    struct model_args a = {.cfg = cfg, .path = path, .text = text};
    struct lua_budget *b = budget_of(L);
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, read_model_call);
    lua_pushlightuserdata(L, &a);
    lua_pushvalue(L, -4);
    b->protected ++;
    int rc = lua_pcall(L, 2, 0, -4);
    b->protected --;
    if (rc != LUA_OK) {
        struct cfg_errors *e = cfg_errors_of(L);
        const char *msg = lua_tostring(L, -1);
        buf_printf(&e->text, "%s: while reading the configuration: %s\n", path,
                   msg != NULL ? msg : "an error");
        e->count++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

int cfg_load_text(const char *path, const char *source, size_t len,
                  const struct cfg_load_opts *opts, struct cfg **out, char **cause)
{
    struct cfg_errors errors;
    buf_init(&errors.text, 0);
    errors.count = 0;
    struct lua_budget *budget = xcalloc(1, sizeof *budget);
    budget->pool = cfg_pool_new();
    budget->max = opts != NULL && opts->max_memory > 0 ? opts->max_memory : MAX_LUA_MEMORY;
    budget->max_spent =
        opts != NULL && opts->max_instructions > 0 ? opts->max_instructions : MAX_INSTRUCTIONS;
    budget->limit = budget->max;
    struct cfg *cfg = xcalloc(1, sizeof *cfg);
    cfg->path = xstrdup(path);
    lua_State *L = new_state(&errors, budget);
    cfg->lua = L;
    cfg->lua_budget = budget;
    set_package_path(L, path);
    bool to_log = opts != NULL && opts->log_messages;
    cfg_messages_to(L, !to_log            ? CFG_MESSAGES_STDERR
                       : opts->quiet_load ? CFG_MESSAGES_DROPPED
                                          : CFG_MESSAGES_LOG);
    if (opts != NULL && opts->prepare != NULL)
        opts->prepare(L);
    char *text = xstrndup(source, len); /* validation reads the source as a C string */
    uint64_t t0 = util_mono_ms(), cpu0 = util_thread_cpu_ms();
    unsigned cpu_ms = opts == NULL || opts->load_cpu_ms == 0 ? MAX_LOAD_CPU_MS : opts->load_cpu_ms;
    int ran =
        run_file(L, path, source, len, opts != NULL && opts->max_instructions > 0 ? 0 : cpu_ms);
    cfg->lua_ms = (unsigned long)(util_mono_ms() - t0);
    cfg->lua_cpu_ms = (unsigned long)(util_thread_cpu_ms() - cpu0);
    if (ran == 0) {
        budget->limit = budget->max + C_RESERVE; /* validation is C code */
        read_model(L, cfg, path, text);
    }
    free(text);
    if (to_log)
        cfg_messages_to(L, CFG_MESSAGES_LOG); /* the functions it calls later */
    budget_reset(L, budget, MAX_CALL_INSTRUCTIONS, true);
    if (errors.count > 0) {
        free(*cause);
        *cause = buf_take(&errors.text);
        cfg_free(cfg);
        return -1;
    }
    buf_free(&errors.text);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &errors_key);
    lua_settop(L, 0);
    /* what building the configuration left behind is not collected now: its blocks stay in
       the state's pool either way (luapool.c), and go with the state at the next reconfig */
    *out = cfg;
    return 0;
}

int cfg_load_with(const char *path, const struct cfg_load_opts *opts, struct cfg **out,
                  char **cause)
{
    size_t len = 0;
    char *source = util_read_file(path, MAX_CONFIG_BYTES, &len, cause);
    if (source == NULL)
        return -1;
    int rc = cfg_load_text(path, source, len, opts, out, cause);
    free(source);
    return rc;
}

int cfg_load(const char *path, struct cfg **out, char **cause)
{
    return cfg_load_with(path, NULL, out, cause);
}

/* "FILE:LINE" where the function at the top of the stack is defined; pops it. */
static void function_place(lua_State *L, char *out, size_t size)
{
    lua_Debug ar;
    if (!lua_isfunction(L, -1)) { /* a value with __call, say */
        snprintf(out, size, "a %s", luaL_typename(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_getinfo(L, ">S", &ar);
    if (ar.linedefined > 0)
        snprintf(out, size, "%s:%d", ar.source[0] == '@' ? ar.source + 1 : ar.short_src,
                 ar.linedefined);
    else
        snprintf(out, size, "%s", ar.short_src);
}

/* Pops the error of a failed call; what happened, in a sentence after the function's place. */
static int call_error(lua_State *L, struct lua_budget *b, int status, const char *place,
                      char **cause)
{
    if (b->exceeded) {
        util_cause(cause,
                   "%s: the function ran past its budget of %zu instructions (an endless loop? "
                   "it was at %s)",
                   place, b->max_spent, b->where);
    } else if (status == LUA_ERRMEM) {
        util_cause(cause, "%s: the function went past %zu MiB, the memory Lua may use", place,
                   b->max >> 20);
    } else { /* a string as it is: converting a number could allocate past the cap */
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        util_cause(cause, "%s: the function failed: %s", place,
                   msg != NULL ? msg : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return -1;
}

/* The function and what it returns, which must be plain: the caller reads it from C
   (plain.c).  Called with nresults, the function and its arguments. */
static int checked_call(lua_State *L)
{
    int nresults = (int)lua_tointeger(L, 1);
    lua_remove(L, 1);
    lua_call(L, lua_gettop(L) - 1, nresults);
    int n = lua_gettop(L);
    const char *bad = cfg_plain_result(L, 1, n);
    if (bad != NULL)
        return luaL_error(L,
                          "it returned %s: the master reads what functions return as it is, "
                          "without metamethods",
                          bad);
    return n;
}

int cfg_lua_call(lua_State *L, int nargs, int nresults, char **cause)
{
    void *ud;
    lua_Alloc alloc = lua_getallocf(L, &ud);
    assert(alloc == capped_alloc); /* a state of cfg_load_text */
    struct lua_budget *b = ud;
    char place[WHERE_MAX];
    lua_pushvalue(L, -1 - nargs);
    function_place(L, place, sizeof place);
    if (b->depth++ == 0)
        budget_reset(L, b, b->max_spent, false);
    lua_pushcfunction(L, checked_call);
    lua_pushinteger(L, nresults);
    lua_rotate(L, -3 - nargs, 2); /* below the function */
    b->protected ++;
    int status = lua_pcall(L, nargs + 2, nresults, 0);
    b->protected --;
    int rc = status == LUA_OK ? 0 : call_error(L, b, status, place, cause);
    if (--b->depth == 0) {
        if (status == LUA_ERRMEM)
            lua_gc(L, LUA_GCCOLLECT); /* give what the function held back now */
        budget_reset(L, b, b->max_spent, true);
    }
    return rc;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void cfg_free(struct cfg *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_workers; i++) {
        struct cfg_worker *w = &cfg->workers[i];
        free(w->name);
        free(w->password);
        free_strings(w->notify_on_missing, w->n_notify_on_missing);
        free(w->file);
    }
    for (size_t i = 0; i < cfg->n_builders; i++) {
        struct cfg_builder *b = &cfg->builders[i];
        free(b->name);
        free_strings(b->workernames, b->n_workernames);
        free(b->builddir);
        free(b->workerbuilddir);
        free_strings(b->tags, b->n_tags);
        free(b->description);
        free(b->description_format);
        free(b->project);
        cfg_lock_accesses_free(b->locks, b->n_locks);
        free(b->file);
    }
    for (size_t i = 0; i < cfg->n_schedulers; i++) {
        struct cfg_scheduler *s = &cfg->schedulers[i];
        free(s->name);
        free(s->kind);
        free_strings(s->builder_names, s->n_builder_names);
        free(s->file);
    }
    if (cfg->github != NULL) {
        struct cfg_github *g = cfg->github;
        free(g->secret);
        free(g->token);
        free(g->pullrequest_ref);
        free_strings(g->property_whitelist, g->n_property_whitelist);
        free_strings(g->skips, g->n_skips);
        free(g->api_url);
        free(g->codebase);
        free(g);
    }
    if (cfg->janitor != NULL)
        free(cfg->janitor->file);
    free(cfg->janitor);
    cfg_free_reporters(cfg);
    for (size_t i = 0; i < cfg->n_change_sources; i++) {
        free(cfg->change_sources[i].name);
        free(cfg->change_sources[i].kind);
        free(cfg->change_sources[i].user);
        free(cfg->change_sources[i].passwd);
        free(cfg->change_sources[i].prefix);
    }
    free(cfg->change_sources);
    free_strings(cfg->upload_roots, cfg->n_upload_roots);
    free(cfg->workers);
    free(cfg->builders);
    free(cfg->schedulers);
    free(cfg->pb_interface);
    free(cfg->pb_tls_key);
    free(cfg->pb_tls_cert);
    free(cfg->pb_tls_chain);
    free(cfg->www_interface);
    free(cfg->db_url);
    free(cfg->title);
    free(cfg->title_url);
    free(cfg->buildbot_url);
    free(cfg->release_cycle);
    for (size_t i = 0; i < cfg->n_redirects; i++) {
        free(cfg->redirects[i].from);
        free(cfg->redirects[i].to);
    }
    free(cfg->redirects);
    free(cfg->release_test_results);
    free(cfg->www_auth);
    free(cfg->path);
    free(cfg->warnings);
    if (cfg->lua != NULL)
        lua_close(cfg->lua);
    if (cfg->lua_budget != NULL)
        cfg_pool_free(((struct lua_budget *)cfg->lua_budget)->pool);
    free(cfg->lua_budget);
    free(cfg);
}

const struct cfg_worker *cfg_find_worker(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_workers; i++) {
        if (strcmp(cfg->workers[i].name, name) == 0)
            return &cfg->workers[i];
    }
    return NULL;
}

const struct cfg_builder *cfg_find_builder(const struct cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_builders; i++) {
        if (strcmp(cfg->builders[i].name, name) == 0)
            return &cfg->builders[i];
    }
    return NULL;
}
