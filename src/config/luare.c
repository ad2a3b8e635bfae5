/*
 * bbm.re: the part of Python's `re` module that Buildbot configurations use
 * (CPython's custom/testsuite_utils.py reads test logs with it), over PCRE2,
 * so that such code ports line by line.  Patterns come from the
 * configuration; the strings they run on may be anything a build wrote (a
 * test log of megabytes), so the work is bounded three ways: a pattern is at
 * most RE_PATTERN_MAX bytes; one match attempt has PCRE2's match, depth and
 * heap limits, past which the call fails with a Lua error that names the
 * pattern; and the time spent matching is charged to the Lua call's own
 * instruction budget (cfg_lua_charge), one instruction per RE_NS_PER_INSN
 * nanoseconds, so that a loop over many matches ends as a Lua loop does.
 * Patterns are compiled by PCRE2's JIT where the system allows it; a match
 * deeper than the JIT's stack is made again by the interpreter, within its
 * depth and heap limits.
 *
 * Python's semantics are kept where a port would notice them: the flags'
 * values (re.I | re.M), `\Z` as the very end of the string, Unicode classes
 * (\d, \w, \s) and case folding, Python 3.7's empty matches next to a
 * previous match, findall's strings or tuples, split's captured groups,
 * sub's templates (\1, \g<name>, \n).  Positions are Lua's: a match's
 * start() is the 1-based byte of its first character and its end() ("end" is
 * a Lua keyword: m["end"](m), or span()) the byte of its last, as
 * string.find gives them; an empty match at i has start i and end i - 1.
 * Python's None (a group that did not take part) is nil, or false inside
 * the lists of split.  A subject that is not valid UTF-8 (Python's str
 * always is) is matched with each byte of its invalid sequences taken as
 * one character that is no letter, digit or space (push_matched).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "config/internal.h"

#define RE_PATTERN_MAX (16 * 1024)
#define RE_MATCH_LIMIT 10000000 /* PCRE2's default: tens of ms */
#define RE_DEPTH_LIMIT 1000000  /* backtracking frames; a lazy repeat takes one per character */
#define RE_HEAP_KIB (64 * 1024)
#define RE_NS_PER_INSN 50 /* a call's 10M instructions: half a second of matching */

/* Python's flag values. */
enum {
    RE_I = 2,
    RE_L = 4,
    RE_M = 8,
    RE_S = 16,
    RE_U = 32,
    RE_X = 64,
    RE_A = 256,
};

#define PAT_MT "bbm.re.Pattern"
#define MATCH_MT "bbm.re.Match"
#define MD_MT "bbm.re.match_data"

struct re_pat {
    pcre2_code *code;
    pcre2_match_context *mctx;
    uint32_t ngroups;
    int flags;
};

struct re_match {
    size_t n; /* groups + 1 */
    PCRE2_SIZE ov[];
};

struct md_box {
    pcre2_match_data *md;
};

/* ------------------------------------------------------------ compiling */

static int pat_gc(lua_State *L)
{
    struct re_pat *p = luaL_checkudata(L, 1, PAT_MT);
    pcre2_code_free(p->code);
    pcre2_match_context_free(p->mctx);
    p->code = NULL;
    p->mctx = NULL;
    return 0;
}

/* Python's `\Z` (the end of the string) is PCRE2's `\z`, and Python's `\v` (a vertical tab)
   PCRE2's `\x0b` (PCRE2's `\v` is any vertical space); everything else is left as it is. */
static void translate(lua_State *L, const char *src, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        luaL_addchar(&b, src[i]);
        if (src[i] == '\\' && i + 1 < len) {
            i++;
            if (src[i] == 'v')
                luaL_addstring(&b, "x0b");
            else
                luaL_addchar(&b, src[i] == 'Z' ? 'z' : src[i]);
        }
    }
    luaL_pushresult(&b);
}

static uint32_t compile_options(lua_State *L, int flags)
{
    if ((flags & ~(RE_I | RE_L | RE_M | RE_S | RE_U | RE_X | RE_A)) != 0 || (flags & RE_L) != 0)
        luaL_error(L,
                   "bbm.re: unknown or unsupported flags %d (re.I, re.M, re.S, re.X, re.A, "
                   "re.U)",
                   flags);
    /* ALT_CIRCUMFLEX: in MULTILINE, Python's ^ also matches after a newline that ends the string */
    uint32_t o = PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_ALT_CIRCUMFLEX;
    if ((flags & RE_A) == 0)
        o |= PCRE2_UCP;
    if (flags & RE_I)
        o |= PCRE2_CASELESS;
    if (flags & RE_M)
        o |= PCRE2_MULTILINE;
    if (flags & RE_S)
        o |= PCRE2_DOTALL;
    if (flags & RE_X)
        o |= PCRE2_EXTENDED;
    return o;
}

/* Pushes a Pattern for `src` with Python's `flags`; raises a Lua error for a bad one. */
static struct re_pat *compile(lua_State *L, const char *src, size_t len, int flags)
{
    if (len > RE_PATTERN_MAX)
        luaL_error(L, "bbm.re: a pattern of %d bytes is longer than the %d allowed", (int)len,
                   RE_PATTERN_MAX);
    uint32_t opts = compile_options(L, flags);
    translate(L, src, len);
    size_t tlen;
    const char *t = lua_tolstring(L, -1, &tlen);
    struct re_pat *p = lua_newuserdatauv(L, sizeof *p, 1);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, PAT_MT);
    lua_pushlstring(L, src, len);
    lua_setiuservalue(L, -2, 1);
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (cctx == NULL)
        abort();
    pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
    int err;
    PCRE2_SIZE off;
    p->code = pcre2_compile((PCRE2_SPTR)t, tlen, opts, &err, &off, cctx);
    pcre2_compile_context_free(cctx);
    if (p->code == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        luaL_error(L, "bbm.re: bad pattern \"%s\" at byte %d: %s", src, (int)off + 1,
                   (const char *)msg);
    }
    p->mctx = pcre2_match_context_create(NULL);
    if (p->mctx == NULL)
        abort();
    pcre2_set_match_limit(p->mctx, RE_MATCH_LIMIT);
    pcre2_set_depth_limit(p->mctx, RE_DEPTH_LIMIT);
    pcre2_set_heap_limit(p->mctx, RE_HEAP_KIB);
    pcre2_pattern_info(p->code, PCRE2_INFO_CAPTURECOUNT, &p->ngroups);
    /* several times faster over a test log; where it cannot be had (no executable memory),
       or for a match anchored at the call, PCRE2 interprets the pattern */
    (void)pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);
    p->flags = flags;
    lua_remove(L, -2); /* the translated text */
    return p;
}

/* Python's re keeps the patterns it compiled (re._MAXCACHE), so a formatter that calls
   re.split(" ", line) for each line of a log compiles once: so does this, for patterns of
   at most RE_CACHE_SRC_MAX bytes, RE_CACHE_MAX of them; then the cache starts afresh.  Its
   table is in the registry at &cache_key; [0] counts its patterns. */
#define RE_CACHE_MAX 128
#define RE_CACHE_SRC_MAX 1024
static const char cache_key = 'c';

/* Pushes the cache, a fresh one when there is none or it is full. */
static void push_cache(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key) == LUA_TTABLE) {
        lua_rawgeti(L, -1, 0);
        lua_Integer n = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (n < RE_CACHE_MAX)
            return;
    }
    lua_pop(L, 1);
    lua_createtable(L, 1, RE_CACHE_MAX);
    lua_pushinteger(L, 0);
    lua_rawseti(L, -2, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
}

/* compile(), through the cache: pushes the Pattern. */
static struct re_pat *cached_compile(lua_State *L, const char *src, size_t len, int flags)
{
    if (len > RE_CACHE_SRC_MAX)
        return compile(L, src, len, flags);
    push_cache(L);
    lua_pushfstring(L, "%d\n", flags);
    lua_pushlstring(L, src, len);
    lua_concat(L, 2);     /* cache key */
    lua_pushvalue(L, -1); /* cache key key */
    if (lua_rawget(L, -3) == LUA_TUSERDATA) {
        lua_replace(L, -3); /* pattern key */
        lua_pop(L, 1);
        return lua_touserdata(L, -1);
    }
    lua_pop(L, 1);
    struct re_pat *p = compile(L, src, len, flags); /* cache key pattern */
    lua_insert(L, -2);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4); /* cache pattern */
    lua_rawgeti(L, -2, 0);
    lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, n + 1);
    lua_rawseti(L, -3, 0);
    lua_remove(L, -2);
    return p;
}

/* The Pattern at `idx`, or one compiled from the string there with the flags at `fidx`
   (0: none), pushed at the top of the stack either way. */
static struct re_pat *pattern_arg(lua_State *L, int idx, int fidx)
{
    struct re_pat *p = luaL_testudata(L, idx, PAT_MT);
    int flags = fidx > 0 ? (int)luaL_optinteger(L, fidx, 0) : 0;
    if (p != NULL) {
        if (flags != 0)
            luaL_error(L, "bbm.re: cannot process flags argument with a compiled pattern");
        lua_pushvalue(L, idx);
        return p;
    }
    size_t len;
    const char *src = luaL_checklstring(L, idx, &len);
    return cached_compile(L, src, len, flags);
}

/* ------------------------------------------------------------ matching */

static int md_gc(lua_State *L)
{
    struct md_box *b = luaL_checkudata(L, 1, MD_MT);
    pcre2_match_data_free(b->md);
    b->md = NULL;
    return 0;
}

/* Match data for `p`, owned by a value pushed on the stack (freed by the collector even when
   a Lua error unwinds the call). */
static pcre2_match_data *new_md(lua_State *L, const struct re_pat *p)
{
    struct md_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->md = NULL;
    luaL_setmetatable(L, MD_MT);
    b->md = pcre2_match_data_create(p->ngroups + 1, NULL);
    if (b->md == NULL)
        abort();
    return b->md;
}

static uint64_t ns_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The state of one operation over a subject: where the next search starts, and Python 3.7's
   rule that an empty match may not follow an empty match at the same place. */
struct scan {
    lua_State *L;
    const struct re_pat *p;
    const char *s; /* the subject, what results are cut from */
    const char *m; /* what is matched: the subject, or its copy made valid UTF-8 */
    size_t len;    /* endpos */
    size_t pos;
    bool last_empty, done;
    uint64_t cpu0;  /* the thread's CPU time charged up to */
    uint64_t wall0; /* when it was read */
    pcre2_match_data *md;
    const char *op;
};

/* Charges the CPU time the thread spent since the last charge to the Lua call's budget: at the
   end of an operation, and within one each time a millisecond has passed (the thread's CPU
   clock is a system call; the monotonic clock is not). */
static void charge(struct scan *sc, bool final)
{
    uint64_t wall = ns_of(CLOCK_MONOTONIC);
    if (!final && wall - sc->wall0 < 1000000)
        return;
    sc->wall0 = wall;
    uint64_t t = ns_of(CLOCK_THREAD_CPUTIME_ID);
    size_t insns = (size_t)((t - sc->cpu0) / RE_NS_PER_INSN);
    sc->cpu0 = t;
    if (cfg_lua_charge(sc->L, insns))
        luaL_error(sc->L,
                   "bbm.re.%s: matching ran past the call's budget (a pattern that backtracks "
                   "too much, or too many matches?)",
                   sc->op);
}

static void limit_error(struct scan *sc, int rc)
{
    const char *what = rc == PCRE2_ERROR_MATCHLIMIT   ? "steps"
                       : rc == PCRE2_ERROR_DEPTHLIMIT ? "backtracking depth"
                       : rc == PCRE2_ERROR_HEAPLIMIT  ? "memory"
                                                      : NULL;
    if (what != NULL)
        luaL_error(sc->L,
                   "bbm.re.%s: the pattern needs more %s than allowed on this string "
                   "(nested repeats that backtrack?)",
                   sc->op, what);
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    luaL_error(sc->L, "bbm.re.%s: %s", sc->op, (const char *)msg);
}

/* One attempt at `at` with `opts`: true when it matched (the offsets in sc->md). */
static bool attempt(struct scan *sc, size_t at, uint32_t opts)
{
    int rc = pcre2_match(sc->p->code, (PCRE2_SPTR)sc->m, sc->len, at, opts | PCRE2_NO_UTF_CHECK,
                         sc->md, sc->p->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter goes deeper, within its limits */
        rc = pcre2_match(sc->p->code, (PCRE2_SPTR)sc->m, sc->len, at,
                         opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, sc->md, sc->p->mctx);
    if (rc == PCRE2_ERROR_NOMATCH)
        return false;
    if (rc < 0)
        limit_error(sc, rc);
    return true;
}

/* The next match of a scan (findall, finditer, sub, split): true with the offsets in sc->md. */
static bool next_match(struct scan *sc)
{
    while (!sc->done && sc->pos <= sc->len) {
        bool found =
            attempt(sc, sc->pos, sc->last_empty ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0);
        charge(sc, false);
        if (found) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
            sc->pos = ov[1];
            sc->last_empty = ov[0] == ov[1];
            return true;
        }
        if (!sc->last_empty)
            break;
        if (sc->pos >= sc->len) /* past an empty match at the end */
            break;
        sc->pos++; /* one character on */
        while (sc->pos < sc->len && ((unsigned char)sc->m[sc->pos] & 0xC0) == 0x80)
            sc->pos++;
        sc->last_empty = false;
    }
    sc->done = true;
    return false;
}

/* Lua's 1-based init (negative from the end) and last byte, as Python's pos and endpos. */
static void bounds(lua_State *L, int idx, size_t len, size_t *pos, size_t *endpos)
{
    lua_Integer i = luaL_optinteger(L, idx, 1), j = luaL_optinteger(L, idx + 1, (lua_Integer)len);
    if (i < 0)
        i = (lua_Integer)len + i + 1;
    if (j < 0)
        j = (lua_Integer)len + j + 1;
    *endpos = j < 0 ? 0 : (size_t)j > len ? len : (size_t)j;
    *pos = i < 1 ? 0 : (size_t)(i - 1) > *endpos ? *endpos : (size_t)(i - 1);
}

/* The length of the valid UTF-8 sequence at s[0..n) (as strict as PCRE2: no overlong form,
   surrogate or code point past U+10FFFF), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (len == 0 || len > n)
        return 0;
    unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/*
 * What the subject at `sidx` is matched as, pushed: the subject itself when it is valid UTF-8
 * (checked once here, not at every match: PCRE2's own check covers the rest of the subject at
 * each call), else a copy of the same length with each byte of an invalid sequence made
 * U+001A (ASCII's SUBSTITUTE: like Python's U+FFFD, no \w, \d or \s), so that positions
 * and the text cut from the subject stay the subject's.
 */
static const char *push_matched(lua_State *L, int sidx)
{
    size_t n;
    const char *s = lua_tolstring(L, sidx, &n);
    size_t i = util_utf8_valid(s, n), k; /* a word at a time: a test log is megabytes */
    if (i == n) {
        lua_pushvalue(L, sidx);
        return s;
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n);
    memcpy(out, s, n);
    while (i < n) {
        k = utf8_char((const unsigned char *)s + i, n - i);
        if (k == 0)
            out[i++] = 0x1A;
        else
            i += k;
    }
    luaL_pushresultsize(&b, n);
    return lua_tostring(L, -1);
}

/* A scan of the subject at `sidx` by the pattern at `pidx` (both kept on the stack); `midx`,
   when not 0, holds what push_matched gave for it. */
static void scan_init(struct scan *sc, lua_State *L, int pidx, int sidx, int midx, const char *op)
{
    sc->L = L;
    sc->p = lua_touserdata(L, pidx);
    sc->s = luaL_checklstring(L, sidx, &sc->len);
    sc->m = midx != 0 ? lua_tostring(L, midx) : push_matched(L, sidx);
    sc->pos = 0;
    sc->last_empty = sc->done = false;
    sc->wall0 = ns_of(CLOCK_MONOTONIC);
    sc->cpu0 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    sc->op = op;
    sc->md = new_md(L, sc->p);
}

/* Python's pos and endpos count characters; Lua's init and last count bytes and may fall
   within a character: the scan starts at the next one, and ends before the one cut. */
static void scan_bounds(struct scan *sc, size_t pos, size_t endpos)
{
    const unsigned char *m = (const unsigned char *)sc->m;
    size_t n = sc->len;
    while (endpos > 0 && endpos < n && (m[endpos] & 0xC0) == 0x80)
        endpos--;
    while (pos < endpos && (m[pos] & 0xC0) == 0x80)
        pos++;
    sc->pos = pos < endpos ? pos : endpos;
    sc->len = endpos;
}

/* Pushes a Match for the offsets in sc->md: the subject at `sidx`, the pattern at `pidx`. */
static void push_match(struct scan *sc, int pidx, int sidx)
{
    lua_State *L = sc->L;
    size_t n = sc->p->ngroups + 1;
    struct re_match *m = lua_newuserdatauv(L, sizeof *m + 2 * n * sizeof(PCRE2_SIZE), 2);
    m->n = n;
    memcpy(m->ov, pcre2_get_ovector_pointer(sc->md), 2 * n * sizeof(PCRE2_SIZE));
    luaL_setmetatable(L, MATCH_MT);
    lua_pushvalue(L, sidx);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, pidx);
    lua_setiuservalue(L, -2, 2);
}

/* search, match, fullmatch: (pattern, string, [init, [last]]) after the pattern is at `pidx`. */
static int one(lua_State *L, int pidx, int sidx, uint32_t opts, const char *op)
{
    struct scan sc;
    size_t len, pos, endpos;
    luaL_checklstring(L, sidx, &len);
    bounds(L, sidx + 1, len, &pos, &endpos);
    scan_init(&sc, L, pidx, sidx, 0, op);
    scan_bounds(&sc, pos, endpos);
    bool found = attempt(&sc, sc.pos, opts);
    charge(&sc, true);
    if (!found) {
        lua_pushnil(L);
        return 1;
    }
    push_match(&sc, pidx, sidx);
    return 1;
}

#define SEARCHERS(X)                                                                               \
    X(search, 0)                                                                                   \
    X(match, PCRE2_ANCHORED)                                                                       \
    X(fullmatch, PCRE2_ANCHORED | PCRE2_ENDANCHORED)

#define DEFINE(name, opts)                                                                         \
    static int pat_##name(lua_State *L)                                                            \
    {                                                                                              \
        luaL_checkudata(L, 1, PAT_MT);                                                             \
        return one(L, 1, 2, opts, #name);                                                          \
    }                                                                                              \
    static int re_##name(lua_State *L)                                                             \
    {                                                                                              \
        lua_settop(L, 3);                                                                          \
        pattern_arg(L, 1, 3);                                                                      \
        lua_replace(L, 1);                                                                         \
        lua_settop(L, 2);                                                                          \
        return one(L, 1, 2, opts, #name);                                                          \
    }
SEARCHERS(DEFINE)
#undef DEFINE

/* Pushes group `g` of the offsets `ov` in `s`, or `none` (pushed as it is) when it did not
   take part. */
static void push_group(lua_State *L, const char *s, const PCRE2_SIZE *ov, size_t g)
{
    if (ov[2 * g] == PCRE2_UNSET)
        lua_pushnil(L);
    else
        lua_pushlstring(L, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

/* findall: the whole matches without groups, the one group's text, or tables of the groups
   ("" for a group that did not take part). */
static int findall(lua_State *L, int pidx, int sidx)
{
    struct scan sc;
    size_t len, pos, endpos;
    luaL_checklstring(L, sidx, &len);
    bounds(L, sidx + 1, len, &pos, &endpos);
    scan_init(&sc, L, pidx, sidx, 0, "findall");
    scan_bounds(&sc, pos, endpos);
    lua_newtable(L);
    lua_Integer k = 0;
    uint32_t ng = sc.p->ngroups;
    while (next_match(&sc)) {
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc.md);
        if (ng <= 1) {
            push_group(L, sc.s, ov, ng);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushliteral(L, "");
            }
        } else {
            lua_createtable(L, (int)ng, 0);
            for (uint32_t g = 1; g <= ng; g++) {
                push_group(L, sc.s, ov, g);
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    lua_pushliteral(L, "");
                }
                lua_rawseti(L, -2, g);
            }
        }
        lua_rawseti(L, -2, ++k);
    }
    charge(&sc, true);
    return 1;
}

static int pat_findall(lua_State *L)
{
    luaL_checkudata(L, 1, PAT_MT);
    return findall(L, 1, 2);
}

static int re_findall(lua_State *L)
{
    lua_settop(L, 3);
    pattern_arg(L, 1, 3);
    lua_replace(L, 1);
    lua_settop(L, 2);
    return findall(L, 1, 2);
}

/* finditer's iterator: upvalues pattern, subject, position, last match empty, endpos, what
   is matched. */
static int iter_next(lua_State *L)
{
    struct scan sc;
    if (lua_isnil(L, lua_upvalueindex(3)))
        return 0;
    scan_init(&sc, L, lua_upvalueindex(1), lua_upvalueindex(2), lua_upvalueindex(6), "finditer");
    /* where the last match ended (a character's start), or the init given */
    scan_bounds(&sc, (size_t)lua_tointeger(L, lua_upvalueindex(3)),
                (size_t)lua_tointeger(L, lua_upvalueindex(5)));
    sc.last_empty = lua_toboolean(L, lua_upvalueindex(4));
    bool found = next_match(&sc);
    charge(&sc, true);
    if (!found) {
        lua_pushnil(L);
        lua_replace(L, lua_upvalueindex(3));
        return 0;
    }
    lua_pushinteger(L, (lua_Integer)sc.pos);
    lua_replace(L, lua_upvalueindex(3));
    lua_pushboolean(L, sc.last_empty);
    lua_replace(L, lua_upvalueindex(4));
    push_match(&sc, lua_upvalueindex(1), lua_upvalueindex(2));
    return 1;
}

static int finditer(lua_State *L, int pidx, int sidx)
{
    size_t len, pos, endpos;
    luaL_checklstring(L, sidx, &len);
    bounds(L, sidx + 1, len, &pos, &endpos);
    lua_pushvalue(L, pidx);
    lua_pushvalue(L, sidx);
    lua_pushinteger(L, (lua_Integer)pos);
    lua_pushboolean(L, false);
    lua_pushinteger(L, (lua_Integer)endpos);
    push_matched(L, sidx);
    lua_pushcclosure(L, iter_next, 6);
    return 1;
}

static int pat_finditer(lua_State *L)
{
    luaL_checkudata(L, 1, PAT_MT);
    return finditer(L, 1, 2);
}

static int re_finditer(lua_State *L)
{
    lua_settop(L, 3);
    pattern_arg(L, 1, 3);
    lua_replace(L, 1);
    lua_settop(L, 2);
    return finditer(L, 1, 2);
}

/* ------------------------------------------------------------ sub and split */

static int group_by_name(lua_State *L, const struct re_pat *p, const char *name, size_t len)
{
    char *end;
    long n = strtol(name, &end, 10);
    if (len > 0 && (size_t)(end - name) == len && name[0] >= '0' && name[0] <= '9') {
        if (n < 0 || (uint32_t)n > p->ngroups)
            luaL_error(L, "bbm.re.sub: invalid group reference %d", (int)n);
        return (int)n;
    }
    int g = pcre2_substring_number_from_name(p->code, (PCRE2_SPTR)name);
    if (g < 0)
        luaL_error(L, "bbm.re.sub: unknown group name '%s'", name);
    return g;
}

/* Python's template escapes: \a \b \f \n \r \t \v \\ and octal; NUL when not one of them. */
static int simple_escape(char c)
{
    static const char from[] = "abfnrtv\\", to[] = "\a\b\f\n\r\t\v\\";
    const char *f = c != '\0' ? strchr(from, c) : NULL;
    return f != NULL ? to[f - from] : -1;
}

static bool octal(char c)
{
    return c >= '0' && c <= '7';
}

/* Adds Python's expansion of the template `t` for the offsets `ov` to `b`. */
static void expand(lua_State *L, luaL_Buffer *b, const struct re_pat *p, const char *t, size_t tlen,
                   const char *s, const PCRE2_SIZE *ov)
{
    for (size_t i = 0; i < tlen; i++) {
        if (t[i] != '\\' || i + 1 >= tlen) {
            if (t[i] == '\\')
                luaL_error(L, "bbm.re.sub: bad escape (end of pattern) in the template");
            luaL_addchar(b, t[i]);
            continue;
        }
        char c = t[++i];
        int g = -1;
        if (c == 'g') {
            const char *close =
                i + 1 < tlen && t[i + 1] == '<' ? memchr(t + i + 2, '>', tlen - i - 2) : NULL;
            if (close == NULL)
                luaL_error(L, "bbm.re.sub: \\g without <name> in the template");
            lua_pushlstring(L, t + i + 2, (size_t)(close - (t + i + 2)));
            g = group_by_name(L, p, lua_tostring(L, -1), (size_t)(close - (t + i + 2)));
            lua_pop(L, 1);
            i = (size_t)(close - t);
        } else if (c == '0' || (octal(c) && i + 2 < tlen && octal(t[i + 1]) && octal(t[i + 2]))) {
            int v = 0, k = 0;
            for (; k < 3 && i < tlen && octal(t[i]); k++, i++)
                v = v * 8 + (t[i] - '0');
            i--;
            luaL_addchar(b, (char)v);
            continue;
        } else if (c >= '1' && c <= '9') {
            g = c - '0';
            if (i + 1 < tlen && t[i + 1] >= '0' && t[i + 1] <= '9')
                g = g * 10 + (t[++i] - '0');
            if ((uint32_t)g > p->ngroups)
                luaL_error(L, "bbm.re.sub: invalid group reference %d", g);
        } else if (simple_escape(c) >= 0) {
            luaL_addchar(b, (char)simple_escape(c));
            continue;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            luaL_error(L, "bbm.re.sub: bad escape \\%c in the template", c);
        } else {
            luaL_addchar(b, '\\');
            luaL_addchar(b, c);
            continue;
        }
        if (ov[2 * g] != PCRE2_UNSET)
            luaL_addlstring(b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    }
}

/* sub(repl, string, count) with the pattern at `pidx`, `repl` a template or a function of
   the match; returns the string and the number of replacements (Python's subn). */
static int sub(lua_State *L, int pidx, int ridx, int sidx, int cidx)
{
    lua_Integer count = luaL_optinteger(L, cidx, 0);
    bool fn = lua_isfunction(L, ridx);
    size_t tlen = 0;
    const char *t = fn ? NULL : luaL_checklstring(L, ridx, &tlen);
    struct scan sc;
    scan_init(&sc, L, pidx, sidx, 0, "sub");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t last = 0;
    lua_Integer n = 0;
    while ((count <= 0 || n < count) && next_match(&sc)) {
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc.md);
        luaL_addlstring(&b, sc.s + last, ov[0] - last);
        last = ov[1];
        n++;
        if (!fn) {
            expand(L, &b, sc.p, t, tlen, sc.s, ov);
            continue;
        }
        charge(&sc, true); /* the function's own instructions are the hook's to count */
        lua_pushvalue(L, ridx);
        push_match(&sc, pidx, sidx);
        lua_call(L, 1, 1);
        sc.wall0 = ns_of(CLOCK_MONOTONIC);
        sc.cpu0 = ns_of(CLOCK_THREAD_CPUTIME_ID);
        if (!lua_isstring(L, -1))
            luaL_error(L, "bbm.re.sub: the function returned a %s, not a string",
                       luaL_typename(L, -1));
        luaL_addvalue(&b);
    }
    charge(&sc, true);
    luaL_addlstring(&b, sc.s + last, sc.len - last);
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

static int pat_sub(lua_State *L)
{
    luaL_checkudata(L, 1, PAT_MT);
    return sub(L, 1, 2, 3, 4);
}

static int re_sub(lua_State *L)
{
    lua_settop(L, 5);
    pattern_arg(L, 1, 5);
    lua_replace(L, 1);
    return sub(L, 1, 2, 3, 4);
}

/* split(string, maxsplit): the pieces between matches with the groups of each match (false
   for a group that did not take part). */
static int split(lua_State *L, int pidx, int sidx, int midx)
{
    lua_Integer maxsplit = luaL_optinteger(L, midx, 0);
    struct scan sc;
    scan_init(&sc, L, pidx, sidx, 0, "split");
    lua_newtable(L);
    lua_Integer k = 0, n = 0;
    size_t last = 0;
    while ((maxsplit <= 0 || n < maxsplit) && next_match(&sc)) {
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc.md);
        lua_pushlstring(L, sc.s + last, ov[0] - last);
        lua_rawseti(L, -2, ++k);
        for (uint32_t g = 1; g <= sc.p->ngroups; g++) {
            push_group(L, sc.s, ov, g);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushboolean(L, false);
            }
            lua_rawseti(L, -2, ++k);
        }
        last = ov[1];
        n++;
    }
    charge(&sc, true);
    lua_pushlstring(L, sc.s + last, sc.len - last);
    lua_rawseti(L, -2, ++k);
    return 1;
}

static int pat_split(lua_State *L)
{
    luaL_checkudata(L, 1, PAT_MT);
    return split(L, 1, 2, 3);
}

static int re_split(lua_State *L)
{
    lua_settop(L, 4);
    pattern_arg(L, 1, 4);
    lua_replace(L, 1);
    return split(L, 1, 2, 3);
}

/* ------------------------------------------------------------ Match objects */

/* The group number of the argument at `idx` (a number or a group's name; none: 0). */
static size_t group_arg(lua_State *L, const struct re_match *m, int idx)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer g = luaL_checkinteger(L, idx);
        if (g < 0 || (size_t)g >= m->n)
            luaL_error(L, "bbm.re: no such group %d", (int)g);
        return (size_t)g;
    }
    const char *name = luaL_checkstring(L, idx);
    lua_getiuservalue(L, 1, 2);
    const struct re_pat *p = lua_touserdata(L, -1);
    int g = pcre2_substring_number_from_name(p->code, (PCRE2_SPTR)name);
    lua_pop(L, 1);
    if (g < 0)
        luaL_error(L, "bbm.re: no such group '%s'", name);
    return (size_t)g;
}

static int m_group(lua_State *L)
{
    struct re_match *m = luaL_checkudata(L, 1, MATCH_MT);
    int top = lua_gettop(L), n = top < 2 ? 1 : top - 1;
    lua_getiuservalue(L, 1, 1);
    const char *s = lua_tostring(L, -1);
    luaL_checkstack(L, n, "too many groups");
    for (int i = 0; i < n; i++)
        push_group(L, s, m->ov, top < 2 ? 0 : group_arg(L, m, i + 2));
    return n;
}

/* groups(default): each group as a value of its own, as string.match gives captures. */
static int m_groups(lua_State *L)
{
    struct re_match *m = luaL_checkudata(L, 1, MATCH_MT);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1);
    const char *s = lua_tostring(L, -1);
    luaL_checkstack(L, (int)m->n, "too many groups");
    for (size_t g = 1; g < m->n; g++) {
        push_group(L, s, m->ov, g);
        if (lua_isnil(L, -1))
            lua_copy(L, 2, -1);
    }
    return (int)m->n - 1;
}

/* groupdict(default): the named groups. */
static int m_groupdict(lua_State *L)
{
    struct re_match *m = luaL_checkudata(L, 1, MATCH_MT);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1);
    const char *s = lua_tostring(L, -1);
    lua_getiuservalue(L, 1, 2);
    const struct re_pat *p = lua_touserdata(L, -1);
    uint32_t count, size;
    PCRE2_SPTR table;
    pcre2_pattern_info(p->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(p->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre2_pattern_info(p->code, PCRE2_INFO_NAMETABLE, &table);
    lua_createtable(L, 0, (int)count);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = table + (size_t)i * size;
        push_group(L, s, m->ov, (size_t)(e[0] << 8 | e[1]));
        if (lua_isnil(L, -1))
            lua_copy(L, 2, -1);
        lua_setfield(L, -2, (const char *)e + 2);
    }
    return 1;
}

static int positions(lua_State *L, bool start, bool end)
{
    struct re_match *m = luaL_checkudata(L, 1, MATCH_MT);
    size_t g = group_arg(L, m, 2);
    if (m->ov[2 * g] == PCRE2_UNSET) {
        lua_pushnil(L);
        lua_pushnil(L);
        return start && end ? 2 : 1;
    }
    if (start)
        lua_pushinteger(L, (lua_Integer)m->ov[2 * g] + 1);
    if (end)
        lua_pushinteger(L, (lua_Integer)m->ov[2 * g + 1]);
    return start && end ? 2 : 1;
}

static int m_start(lua_State *L)
{
    return positions(L, true, false);
}

static int m_end(lua_State *L)
{
    return positions(L, false, true);
}

static int m_span(lua_State *L)
{
    return positions(L, true, true);
}

static int m_tostring(lua_State *L)
{
    struct re_match *m = luaL_checkudata(L, 1, MATCH_MT);
    lua_getiuservalue(L, 1, 1);
    const char *s = lua_tostring(L, -1);
    lua_pushfstring(L, "<bbm.re.Match object; span=(%d, %d), match=", (int)m->ov[0] + 1,
                    (int)m->ov[1]);
    lua_pushlstring(L, s + m->ov[0], m->ov[1] - m->ov[0]);
    lua_pushliteral(L, ">");
    lua_concat(L, 3);
    return 1;
}

/* ------------------------------------------------------------ Pattern's fields, escape */

static int pat_index(lua_State *L)
{
    struct re_pat *p = luaL_checkudata(L, 1, PAT_MT);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "pattern") == 0) {
        lua_getiuservalue(L, 1, 1);
    } else if (strcmp(k, "flags") == 0) {
        lua_pushinteger(L, p->flags);
    } else if (strcmp(k, "groups") == 0) {
        lua_pushinteger(L, p->ngroups);
    } else if (strcmp(k, "groupindex") == 0) {
        uint32_t count, size;
        PCRE2_SPTR table;
        pcre2_pattern_info(p->code, PCRE2_INFO_NAMECOUNT, &count);
        pcre2_pattern_info(p->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
        pcre2_pattern_info(p->code, PCRE2_INFO_NAMETABLE, &table);
        lua_createtable(L, 0, (int)count);
        for (uint32_t i = 0; i < count; i++) {
            const unsigned char *e = table + (size_t)i * size;
            lua_pushinteger(L, e[0] << 8 | e[1]);
            lua_setfield(L, -2, (const char *)e + 2);
        }
    } else {
        luaL_getmetafield(L, 1, "methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int re_compile(lua_State *L)
{
    lua_settop(L, 2);
    pattern_arg(L, 1, 2);
    return 1;
}

/* Python's re.escape: every character but ASCII letters, digits and _ escaped. */
static int re_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && strchr("()[]{}?*+-|^$\\.&~# \t\n\r\v\f", c) != NULL && c != '\0')
            luaL_addchar(&b, '\\');
        luaL_addchar(&b, (char)c);
    }
    luaL_pushresult(&b);
    return 1;
}

void cfg_push_re(lua_State *L)
{
    static const luaL_Reg pat_methods[] = {
        {"search", pat_search},       {"match", pat_match},
        {"fullmatch", pat_fullmatch}, {"findall", pat_findall},
        {"finditer", pat_finditer},   {"sub", pat_sub},
        {"split", pat_split},         {NULL, NULL},
    };
    static const luaL_Reg match_methods[] = {
        {"group", m_group}, {"groups", m_groups}, {"groupdict", m_groupdict},
        {"start", m_start}, {"end", m_end},       {"span", m_span},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"compile", re_compile}, {"search", re_search},
        {"match", re_match},     {"fullmatch", re_fullmatch},
        {"findall", re_findall}, {"finditer", re_finditer},
        {"sub", re_sub},         {"split", re_split},
        {"escape", re_escape},   {NULL, NULL},
    };
    if (luaL_newmetatable(L, PAT_MT)) {
        lua_pushcfunction(L, pat_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, pat_index);
        lua_setfield(L, -2, "__index");
        luaL_newlib(L, pat_methods);
        lua_setfield(L, -2, "methods");
        lua_pushliteral(L, "bbm.re.Pattern");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, MATCH_MT)) {
        luaL_newlib(L, match_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, m_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "bbm.re.Match");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, MD_MT)) {
        lua_pushcfunction(L, md_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "bbm.re");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    static const struct {
        const char *name;
        int value;
    } flags[] = {
        {"I", RE_I}, {"IGNORECASE", RE_I}, {"M", RE_M}, {"MULTILINE", RE_M},
        {"S", RE_S}, {"DOTALL", RE_S},     {"X", RE_X}, {"VERBOSE", RE_X},
        {"A", RE_A}, {"ASCII", RE_A},      {"U", RE_U}, {"UNICODE", RE_U},
    };
    for (size_t i = 0; i < UTIL_NELEM(flags); i++) {
        lua_pushinteger(L, flags[i].value);
        lua_setfield(L, -2, flags[i].name);
    }
}
