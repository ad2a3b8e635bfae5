/*
 * pb: Twisted's Perspective Broker, as Buildbot workers speak it.
 *
 * Three layers, bottom up (see shared/spec/pb/SPEC.md):
 *   banana  bytes <-> trees of lists, ints, floats and byte strings (banana.c)
 *   jelly   banana trees <-> typed values: None, bool, text, tuple, dict,
 *           remote references, copyable failures (jelly.c)
 *   broker  PB messages over one connection: calls, answers, errors, object
 *           ids with reference counts, and cred's challenge-response login
 *           (broker.c, login.c)
 *
 * One value type serves both levels: a banana tree uses only PB_LIST, PB_INT,
 * PB_BIGINT, PB_FLOAT and PB_BYTES; a jelly value uses all kinds.  The module
 * knows nothing of builds or sockets: the broker takes bytes in and hands
 * bytes out through callbacks, so the master's worker sessions and a future C
 * worker can both use it, and unit tests can wire two brokers together.
 *
 * Every decoder limit is Twisted's or tighter: 64 header bytes, 655360 bytes
 * per string and elements per list, plus a bound on nesting depth, on the size
 * of one expression, and on the values a decoded message may expand to.  A
 * server connection gets far tighter bounds until its peer has logged in
 * (pb_limits_login): a stranger can make it hold a few KiB, not megabytes.
 */
#ifndef BBM_PB_H
#define BBM_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Twisted's limits (banana.py), and ours on top: what a logged-in peer may send. */
#define PB_MAX_HEADER 64
#define PB_MAX_LENGTH 655360      /* bytes per string, elements per list */
#define PB_MAX_DEPTH 64           /* nesting of lists in one expression */
#define PB_MAX_EXPR (8u << 20)    /* bytes of one top-level expression */
#define PB_MAX_NODES 1000000      /* values one expression may decode into */
#define PB_MAX_LOCAL_OBJECTS 1024 /* objects exported on one connection */
#define PB_MAX_PENDING 4096       /* outstanding calls in each direction */

/*
 * Before login a peer needs only the dialect choice, its version, login(name)
 * and respond(digest, mind): each under 100 bytes and 20 values with a short
 * name (SPEC 4.1; a sendchange client's login is the same).
 */
#define PB_LOGIN_MAX_EXPR 1024
#define PB_LOGIN_MAX_NODES 64
#define PB_LOGIN_MAX_LENGTH 256 /* the longest login name accepted */
#define PB_LOGIN_MAX_DEPTH 8
#define PB_LOGIN_MAX_CALLS 2   /* the peer's calls waiting for an answer */
#define PB_LOGIN_MAX_OBJECTS 2 /* login challengers exported at once */

/* What a peer may make one connection hold. */
struct pb_limits {
    size_t max_expr;    /* bytes of one top-level expression */
    size_t max_nodes;   /* values one expression may decode, and unjelly, into */
    size_t max_length;  /* bytes per string, elements per list (<= PB_MAX_LENGTH) */
    int max_depth;      /* nesting of lists (<= PB_MAX_DEPTH) */
    size_t max_calls;   /* the peer's calls waiting for our answers */
    size_t max_objects; /* objects exported to the peer */
};

/* A server broker's limits until its peer logs in, and after (also a client's). */
extern const struct pb_limits pb_limits_login;
extern const struct pb_limits pb_limits_session;

/* ------------------------------------------------------------------ values */

enum pb_kind {
    PB_NONE,
    PB_BOOL,
    PB_INT,    /* fits int64_t */
    PB_BIGINT, /* |v| >= 2^63: magnitude kept as little-endian base-128 groups */
    PB_FLOAT,
    PB_BYTES, /* byte string (banana STRING / VOCAB) */
    PB_TEXT,  /* jelly ["unicode", utf8] */
    PB_LIST,
    PB_TUPLE,
    PB_DICT, /* items hold key0, value0, key1, value1, ... in order */
    PB_SET,
    PB_FROZENSET,
    PB_REMOTE, /* ["remote", luid]: an object of the peer that sent it */
    PB_LOCAL,  /* ["local", luid]: one of our own objects sent back */
    PB_COPY,   /* [dotted type name, state]: a Copyable (CopyableFailure) */
};

struct pb_value {
    enum pb_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *data; /* NUL-terminated for convenience; may contain NULs */
            size_t len;
            bool neg; /* PB_BIGINT only */
        } s;
        struct {
            struct pb_value **items;
            size_t n;
            size_t cap;
        } list;
        uint32_t luid;
        struct {
            char *type;
            struct pb_value *state;
        } copy;
    } u;
};

/* Constructors; each returns a new value the caller owns (pb_value_free). */
struct pb_value *pb_none(void);
struct pb_value *pb_bool(bool b);
struct pb_value *pb_int(int64_t i);
struct pb_value *pb_float(double f);
struct pb_value *pb_bytes(const void *data, size_t len);
struct pb_value *pb_text(const char *s);
struct pb_value *pb_textn(const char *s, size_t len);
struct pb_value *pb_list(void);
struct pb_value *pb_tuple(void);
struct pb_value *pb_dict(void);
struct pb_value *pb_remote(uint32_t luid);
struct pb_value *pb_copy(const char *type, struct pb_value *state);
/* Containers take ownership of what is added; both return `list` for chaining. */
struct pb_value *pb_append(struct pb_value *list, struct pb_value *item);
struct pb_value *pb_dict_set(struct pb_value *dict, const char *key, struct pb_value *value);

void pb_value_free(struct pb_value *v);
struct pb_value *pb_value_dup(const struct pb_value *v);
bool pb_value_equal(const struct pb_value *a, const struct pb_value *b);

/* Readers; all accept NULL and the wrong kind, returning NULL / false. */
/* The value of `key` in a dict; keys may be text or bytes (old Python 2 peers). */
struct pb_value *pb_dict_get(const struct pb_value *dict, const char *key);
/* Text or bytes as a C string (not valid for data with embedded NULs). */
const char *pb_str(const struct pb_value *v);
bool pb_is_str(const struct pb_value *v);
/* Element i of a list, tuple or set. */
struct pb_value *pb_item(const struct pb_value *v, size_t i);
/* The number of elements of a list, tuple or set; 0 for anything else, a dict included
   (a dict's pairs are in u.list, two items per pair). */
size_t pb_len(const struct pb_value *v);
/* A readable rendering for logs: Python-like, strings cut at `max` bytes. */
void pb_value_repr(struct buf *out, const struct pb_value *v, size_t max);

/* ------------------------------------------------------------------ banana */

/*
 * Streaming banana decoder.  Feed bytes as they arrive, then pull complete
 * top-level expressions.  VOCAB tokens are always accepted and turned into
 * PB_BYTES.
 */
struct pb_decoder;
/* A decoder bounded by `lim` (not copied; NULL = pb_limits_session). */
struct pb_decoder *pb_decoder_new(const struct pb_limits *lim);
/* Applies other limits from the next token on (raising them after a login). */
void pb_decoder_set_limits(struct pb_decoder *d, const struct pb_limits *lim);
void pb_decoder_free(struct pb_decoder *d);
/*
 * Buffers bytes; -1 with *cause when more would be pending than one
 * expression and one incomplete token may hold (max_expr + max_length).
 */
int pb_decoder_feed(struct pb_decoder *d, const void *data, size_t len, char **cause);
/*
 * Returns 1 and a banana tree in *out when an expression is complete, 0 when
 * more bytes are needed, -1 with *cause on malformed input or a limit passed
 * (after which the decoder is unusable: the connection must be closed).
 */
int pb_decoder_next(struct pb_decoder *d, struct pb_value **out, char **cause);

/*
 * Appends the banana encoding of a tree to `out`, choosing INT/LONGINT/NEG/
 * LONGNEG as Twisted does and, when `vocab` is set (the "pb" dialect),
 * replacing every byte string that equals a vocabulary word by its VOCAB
 * token.  Fails (-1, *cause) for a non-banana kind or a length over the limit.
 */
int pb_banana_encode(struct buf *out, const struct pb_value *tree, bool vocab, char **cause);
/* The vocabulary word for index 1..31, or NULL. */
const char *pb_vocab_word(int index);

/* ------------------------------------------------------------------- jelly */

/*
 * Banana tree -> jelly value.  Accepts text as ["unicode", ...] and as bare
 * bytes, lists and tuples, reference/dereference (no cycles), refuses the
 * tags Twisted's security options refuse (module, class, instance, ...) and
 * a value of more than `max_nodes` values, shared references counted each time.
 */
int pb_unjelly(const struct pb_value *tree, size_t max_nodes, struct pb_value **out, char **cause);
/* Jelly value -> banana tree (always succeeds for a well-formed value). */
struct pb_value *pb_jelly(const struct pb_value *v);

/* A twisted.spread.pb.CopyableFailure with every key Twisted expects (SPEC 3.6). */
struct pb_value *pb_failure_new(const char *type, const char *value, const char *const *parents);
/* True if a failure value is of `type` (compares `type` and the `parents` list). */
bool pb_failure_is(const struct pb_value *failure, const char *type);
/* A short "type: value" description of a failure (malloc'd; escape it for a log). */
char *pb_failure_describe(const struct pb_value *failure);

#define PB_ERR_NOSUCHMETHOD "twisted.spread.flavors.NoSuchMethod"
#define PB_ERR_UNAUTHORIZED "twisted.cred.error.UnauthorizedLogin"
#define PB_ERR_PB "twisted.spread.pb.Error"
#define PB_ERR_CONNECTION_LOST "twisted.spread.pb.PBConnectionLost"

/* ------------------------------------------------------------------ broker */

struct pb_broker;

/* An incoming call on one of our objects, waiting for pb_call_answer/_fail. */
struct pb_call {
    struct pb_broker *broker;
    uint32_t reqid;
    bool answer_required;
    uint32_t luid; /* 0 for the root object */
    void *obj;     /* what was passed to pb_broker_export */
    const char *method;
    struct pb_value *args;   /* a PB_TUPLE (or PB_LIST) */
    struct pb_value *kwargs; /* a PB_DICT */
};

/*
 * An answer (failure == NULL) or an error (result == NULL) to an outgoing
 * call.  Also called with a PBConnectionLost failure for every pending call
 * when the broker is freed.  Neither value is owned by the callback.
 */
typedef void (*pb_answer_cb)(void *arg, const struct pb_value *result,
                             const struct pb_value *failure);

struct pb_broker_ops {
    /* Bytes to send to the peer. */
    void (*send)(void *ctx, const char *data, size_t len);
    /* A call on an exported object, or on the root for a non-login method. */
    void (*call)(void *ctx, struct pb_call *call);
    /*
     * Server side: the password for `username`, or NULL if there is no such
     * user.  The broker does the challenge-response check itself.
     */
    const char *(*password)(void *ctx, const char *username);
    /*
     * Server side: `username` passed the check.  `mind` is the luid of the
     * client's object.  The session answers `respond` when it is ready, with
     * pb_call_answer(respond, pb_remote(perspective luid)) - or refuses it.
     */
    void (*login)(void *ctx, const char *username, uint32_t mind, struct pb_call *respond);
    /* Server side: a known user failed the password check (optional; for the log). */
    void (*refused)(void *ctx, const char *username);
    /* Client side: the negotiation is done and calls can be made. */
    void (*ready)(void *ctx);
    /* The last reference the peer held on an exported object was dropped. */
    void (*released)(void *ctx, uint32_t luid, void *obj);
};

/*
 * A broker for one connection.  A server sends its dialect offer at once
 * (through ops->send, from inside this call) and holds its peer to
 * pb_limits_login until a login succeeds, then to pb_limits_session (a
 * client broker to pb_limits_session throughout).  The broker does not own ctx.
 */
struct pb_broker *pb_broker_new(bool server, const struct pb_broker_ops *ops, void *ctx);
/* Holds the peer to `lim` (not copied) from now on. */
void pb_broker_set_limits(struct pb_broker *b, const struct pb_limits *lim);
/* Fails every pending outgoing call with PBConnectionLost, frees every pending incoming call. */
void pb_broker_free(struct pb_broker *b);

/*
 * Feeds bytes received from the peer; runs callbacks for what they complete.
 * Returns 0, or -1 with *cause for a protocol error after which the
 * connection must be closed (a malformed frame, an unknown request id, ...).
 * Callbacks must not free the broker; close after this returns.
 */
int pb_broker_receive(struct pb_broker *b, const void *data, size_t len, char **cause);

/* Registers an object the peer may call; returns its luid (refcount 0 until sent). */
uint32_t pb_broker_export(struct pb_broker *b, void *obj);
/* Forgets an exported object at once; later decrefs for it are ignored. */
void pb_broker_unexport(struct pb_broker *b, uint32_t luid);

/*
 * Calls `method` on the peer's object `luid` (0 = the peer's root).  Takes
 * ownership of args (a PB_TUPLE; NULL = empty) and kwargs (a PB_DICT; NULL =
 * empty).  `cb` may be NULL when the answer does not matter.  Returns 0, or
 * -1 with *cause (too many pending calls; the args cannot be encoded).
 */
int pb_broker_call(struct pb_broker *b, uint32_t luid, const char *method, struct pb_value *args,
                   struct pb_value *kwargs, pb_answer_cb cb, void *arg, char **cause);
/* Tells the peer we dropped one reference to its object `luid`. */
void pb_broker_decref(struct pb_broker *b, uint32_t luid);

/*
 * Client side: logs in as Buildbot workers do (root.login(username), then
 * challenger.respond(MD5(MD5(password) + challenge), mind)).  `cb` gets the
 * perspective (a PB_REMOTE) or the server's failure.
 */
int pb_broker_login(struct pb_broker *b, const char *username, const char *password, uint32_t mind,
                    pb_answer_cb cb, void *arg, char **cause);

/* Answers an incoming call (takes ownership of result; NULL = None) and frees it. */
void pb_call_answer(struct pb_call *call, struct pb_value *result);
/* Answers with an error (takes ownership of a failure from pb_failure_new) and frees it. */
void pb_call_fail(struct pb_call *call, struct pb_value *failure);

/* Fails a call with a failure of `type`, whose `parents` list is given (NULL-terminated). */
void pb_call_fail_with(struct pb_call *call, const char *type, const char *const *parents,
                       const char *fmt, ...) UTIL_PRINTF(4, 5);

/* Parent lists (the exception class and its bases, as Twisted sends them). */
extern const char *const pb_parents_pb_error[];
extern const char *const pb_parents_no_such_method[];
extern const char *const pb_parents_unauthorized[];
extern const char *const pb_parents_runtime_error[];

/* Number of objects exported and of calls pending, for status and tests. */
size_t pb_broker_exported(const struct pb_broker *b);
size_t pb_broker_pending(const struct pb_broker *b);

#endif
