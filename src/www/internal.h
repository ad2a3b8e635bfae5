/*
 * Inside www: the query language (query.c), Python-compatible JSON output
 * (json.c), path patterns (path.c), the resource types and endpoints (api/),
 * and what a request handler gets (server.c).
 */
#ifndef BBM_WWW_INTERNAL_H
#define BBM_WWW_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "control/control.h"
#include "db/db.h"
#include "events/events.h"
#include "util/util.h"
#include "www/www.h"

/* Field types of the data API (API.md §5). */
enum www_ftype {
    WWW_F_INT,
    WWW_F_STR,
    WWW_F_BOOL,
    WWW_F_EPOCH,
    WWW_F_INTS,   /* list of integers */
    WWW_F_STRS,   /* list of strings */
    WWW_F_OBJECT, /* anything else: not filterable by value */
};

struct www_field {
    const char *name;
    enum www_ftype type;
    /* SQL expression that filters and orders this field, or NULL (done in memory). */
    const char *sql;
};

struct www_rtype {
    const char *plural;
    const struct www_field *fields;
    size_t n_fields;
};

const struct www_field *www_rtype_field(const struct www_rtype *t, const char *name);

/* The query language (API.md §4). */
enum www_op { WWW_EQ, WWW_NE, WWW_LT, WWW_LE, WWW_GT, WWW_GE, WWW_CONTAINS, WWW_IN, WWW_NOTIN };

struct www_filter {
    const struct www_field *field;
    enum www_op op;
    json_t *values; /* array of converted values (integers, strings, booleans) */
    bool taken;     /* applied by the endpoint itself (www_query_take_eq) */
};

struct www_order {
    const struct www_field *field;
    bool desc;
};

/* A query parameter as received (both may be "" but never NULL). */
struct www_kv {
    const char *key;
    const char *value;
};

#define WWW_QUERY_MAX_ITEMS 64

struct www_query {
    char **fields; /* NULL: all */
    size_t n_fields;
    struct www_filter *filters;
    size_t n_filters;
    struct www_order *orders;
    size_t n_orders;
    bool has_limit, has_offset;
    /* Python ints: beyond 64 bits they are saturated and flagged (Buildbot's SQL cannot take
       them, its slices can). */
    long long limit, offset;
    bool limit_big, offset_big;
    char **props;
    size_t n_props;
    bool rewritten; /* the endpoint has put its own order and paging in (api/changes.c) */
};

/*
 * Parses the query parameters of a request on resource type `t`.  Returns 0,
 * or -1 with *cause set to Buildbot's 400 message.  `single` says the path
 * names one resource (filters are refused there).  Free with www_query_free.
 */
int www_query_parse(const struct www_kv *kv, size_t n, const struct www_rtype *t, bool single,
                    struct www_query *q, char **cause);
void www_query_free(struct www_query *q);
/* Was field `name` asked for (always true without field=)? */
bool www_query_wants(const struct www_query *q, const char *name);
/*
 * Finds an `eq` filter on `name` and marks it taken (the endpoint applies it; SQL and
 * www_query_match skip it), returning its first value (caller decrefs).  Asking again
 * returns the same value: an endpoint may be called once per batch of a long answer.
 */
json_t *www_query_take_eq(struct www_query *q, const char *name);
/* Can the filters and orders all be done by SQL? */
bool www_query_sql_ok(const struct www_query *q);
/*
 * Appends " AND ..." for every filter that SQL can do, with the values in
 * `params` (an array of at least WWW_QUERY_MAX_PARAMS).  Fields come from
 * the whitelist only.  The order and paging come from www_query_sql_window.
 */
#define WWW_QUERY_MAX_PARAMS 256
int www_query_sql(const struct www_query *q, struct buf *sql, struct db_param *params, size_t *n,
                  char **cause);
/*
 * In memory: keeps the matching objects, and when `page` sorts and pages
 * them.  Returns the number that matched (before paging).
 */
size_t www_query_apply(const struct www_query *q, json_t *list, bool page);
/* Sorts `list` by the query's orders, as Python's sorted() (stable). */
void www_query_sort(const struct www_query *q, json_t *list);
/* Does `obj` pass every filter not taken? */
bool www_query_match(const struct www_query *q, json_t *obj);
/* Removes the fields not asked for. */
void www_query_select(const struct www_query *q, json_t *obj);
/* Python's list[offset:offset + limit] on n items: the indexes kept. */
void www_query_slice(const struct www_query *q, long long n, long long *start, long long *end);
/* Does that slice need n (a bound counts from the end)? */
bool www_query_slice_needs_n(const struct www_query *q);
/* Python's a + b for a slice bound: saturated, *big set when it passes 64 bits. */
long long www_query_add(long long a, long long b, bool *big);
/* Buildbot's 500 text for an integer its database driver cannot take. */
#define WWW_OVERFLOW_TEXT "OverflowError('Python int too large to convert to SQLite INTEGER')"

/*
 * Which rows of a collection an endpoint reads (listing.c sets it; api_rows
 * obeys it for the collection's own query).  ALL: every row, as the query
 * pages them.  PROBE: the same, at most `rows` of them, to learn whether the
 * answer is small.  BATCH: `rows` rows of a streamed answer in a total order
 * (the query's orders, then the source's tiebreak), starting after `key`, the
 * sort key of the last row of the previous batch.
 */
enum www_win_mode { WWW_WIN_ALL, WWW_WIN_PROBE, WWW_WIN_BATCH };

struct www_window {
    enum www_win_mode mode;
    long long rows;
    long long skip;    /* BATCH: SQL OFFSET (the query's own, for its first batch) */
    bool python_order; /* BATCH: sort as Python does (None first) rather than as SQL */
    bool has_key;
    size_t n_key; /* the key: one value per order, then the tiebreak; owned */
    struct db_param *key;
    long long got; /* out: rows read */
    /* PROBE: a streamed answer follows when it finds more rows than it reads (listing.c);
       out (api_rows, before the probe): the database would sort all the rows for each
       batch, as no index gives the order; and there are more than www's sort_max of them
       (then the probe is not run) */
    bool may_stream, sorts, too_many_to_sort;
};
void www_window_clear_key(struct www_window *win);
/* Makes `to`'s key a copy of `from`'s. */
void www_window_copy_key(struct www_window *to, const struct www_window *from);
/* Stores row `row` of `r`, from column `col` on, as the window's key. */
void www_window_set_key(struct www_window *win, const struct www_query *q, const char *tiebreak,
                        const struct db_res *r, size_t row, size_t col);
/*
 * For a PROBE or BATCH window: appends the keyset condition (" AND ..."), the
 * ORDER BY and "LIMIT ? OFFSET ?" to `sql`, with their values in `params`
 * (grown as needed), and for BATCH the sort key's expressions to `keys` (to
 * select after the fields).  `page`: the database filters and pages the
 * collection.  -1 with *cause (Buildbot's 500 text) for a value SQL cannot take.
 */
int www_query_sql_window(const struct www_query *q, const struct www_window *win, bool page,
                         const char *tiebreak, enum db_kind kind, struct buf *sql, struct buf *keys,
                         struct db_param **params, size_t *n, size_t *cap, char **cause);

/* cache.c: whole GET answers, reused while the database is unchanged (see there). */
#define WWW_CACHE_TTL_MS 1000
#define WWW_CACHE_MAX_BODY (1024 * 1024)
struct www_cache;
struct www_cache *www_cache_new(void);
void www_cache_free(struct www_cache *c);
/* Forgets every answer (what they came from changed outside the database). */
void www_cache_clear(struct www_cache *c);
/* Forgets the answers too old to be used again. */
void www_cache_expire(struct www_cache *c);
/* Queues the stored answer for `key` and the encodings `conn` takes: 1 queued, 0 queueing
   failed, -1 none fresh. */
int www_cache_answer(struct www_cache *c, const char *key, struct MHD_Connection *conn);
/* Keeps `resp` (the caller's reference), the answer to `conn` (its Accept-Encoding is part of
   the key), read from `tables` (NULL: any) when db_writes(tables) was `writes`. */
void www_cache_put(struct www_cache *c, const char *key, struct MHD_Connection *conn,
                   const char *const *tables, unsigned long writes, unsigned status,
                   struct MHD_Response *resp, size_t bytes);

/* Buildbot's JSON text: sorted keys, ASCII only. */
enum www_json_style {
    WWW_JSON_COMPACT, /* separators "," ":" */
    WWW_JSON_SPACED,  /* Python's default: ", " ": " on one line */
    WWW_JSON_PRETTY,  /* indent=2, ", " at line ends */
};
char *www_json_dump(const json_t *v, enum www_json_style style, size_t *len);
/*
 * The same text written in pieces (listing.c, api/logs.c): www_json_next
 * starts a member or element at `depth`, opening the container with `open`
 * when it is the `first`; www_json_key writes `"key": `; www_json_put a value
 * at `depth`; www_json_end closes a container at `depth` (`empty`: nothing
 * was put in it).  www_json_escape writes the inside of a string: a byte that
 * is not UTF-8 shows as U+FFFD.
 */
void www_json_put(struct buf *b, const json_t *v, enum www_json_style style, int depth);
void www_json_next(struct buf *b, enum www_json_style style, int depth, char open, bool first);
void www_json_key(struct buf *b, enum www_json_style style, const char *key);
void www_json_end(struct buf *b, enum www_json_style style, int depth, char open, char close,
                  bool empty);
void www_json_escape(struct buf *b, const char *s, size_t len);
/* pyjson.c: Python's json.loads message for text it cannot read (see there). */
void www_json_py_error(const char *text, size_t len, char *msg, size_t cap);

/* Path patterns (path.c). */
#define WWW_PATH_MAX_SEGS 16
struct www_args {
    size_t n;
    const char *names[WWW_PATH_MAX_SEGS];
    const char *str[WWW_PATH_MAX_SEGS];
    long long num[WWW_PATH_MAX_SEGS];
};
/*
 * Matches `segs` against a pattern like "builders/n:builderid/builds"; on a
 * match fills `args` and returns true.
 */
bool www_path_match(const char *pattern, char *const *segs, size_t nsegs, struct www_args *args);
/* The value of a named argument; NULL / false if absent. */
const char *www_arg_str(const struct www_args *a, const char *name);
bool www_arg_num(const struct www_args *a, const char *name, long long *out);
/* Python's int() of a path segment or query value. */
bool www_parse_int(const char *s, long long *out);

/*
 * An answer written piece by piece (stream.c): fill() appends the next piece
 * to `out` and returns 1 while more follows, 0 at the end, -1 on an error
 * (*cause); it borrows a pooled database connection for each piece.  It may
 * also return WWW_SLOW (a read on a request thread ran past its allowance,
 * www_pool_get_quick): then nothing was written, and the same call is made
 * again on one of the threads for slow reads.
 */
#define WWW_SLOW (-2)
struct www_producer {
    int (*fill)(void *state, struct buf *out, char **cause);
    void (*free)(void *state);
    void *state;
};

/* A request being answered by an endpoint. */
struct www_req {
    struct db *db;
    struct www_query q;
    struct www_args args;
    const struct www_endpoint *ep;
    const char *path; /* without the /api/v2/ prefix */
    const char *buildbot_url;
    struct www *www;
    enum www_json_style style;
    /* The rows of a collection to read (listing.c). */
    struct www_window win;
    /* Raw answers: set by raw endpoints (streamed by server.c). */
    struct www_raw *raw;
    /* An answer the endpoint writes itself, piece by piece (log contents); fill NULL: none. */
    struct www_producer produce;
};

/* headers.c: request headers that change how an answer is sent (see there). */
enum www_range_result {
    WWW_RANGE_WHOLE,         /* no Range, several ranges, or one not understood: 200 whole */
    WWW_RANGE_PART,          /* 206 with bytes [first, last] */
    WWW_RANGE_UNSATISFIABLE, /* 416 */
};
/* The range a Range header (NULL: none) asks of a body of `len` bytes (an empty body is
   always sent whole). */
enum www_range_result www_range_parse(const char *header, uint64_t len, uint64_t *first,
                                      uint64_t *last);
/* Does an Accept-Encoding header (NULL: none) take gzip (named, or "*", with q > 0)? */
bool www_gzip_accepted(const char *header);

/* gzip.c: the gzip content coding, whole or a stream at a time (see there). */
#define WWW_GZIP_STATE (272 * 1024) /* what a deflate stream holds (zlib's own formula) */
/* `text` as gzip: a new buffer (caller frees) of *out_len bytes. */
char *www_gzip(const char *text, size_t len, size_t *out_len);
struct www_deflate;
struct www_deflate *www_deflate_new(void);
/* Appends the compressed form of `in` to `out`; `end`: the last piece (the trailer follows). */
void www_deflate(struct www_deflate *d, const char *in, size_t len, bool end, struct buf *out);
void www_deflate_free(struct www_deflate *d);

/* How an answer goes out (stream.c). */
/*
 * The bytes of answer text held for clients (stream.c): whole answers from when they are
 * queued until libmicrohttpd frees them (the cache's among them), and the piece each
 * streamed answer holds.  An answer that would take it past `max` is not sent: 503.
 */
struct www_budget {
    _Atomic size_t used;
    size_t max;
};
#define WWW_ANSWER_BUDGET ((size_t)128 << 20)
/* What a streamed answer takes of the budget at least: a piece of a log (WWW_PIECE_MAX). */
#define WWW_STREAM_RESERVE (256 * 1024)

struct www_answer {
    const char *type;        /* Content-Type */
    const char *disposition; /* Content-Disposition, or NULL */
    struct www_cache *cache; /* where a whole answer is kept under `key`; NULL: nowhere */
    const char *key;
    const char *const *tables; /* what it was read from, and db_writes(tables) then */
    unsigned long writes;
    size_t whole_max;           /* a longer answer is streamed (www->answer_max) */
    struct www_budget *budget;  /* counts what the answer holds; NULL: not counted */
    struct www_jobs *slow;      /* where a streamed piece that was slow is made (WWW_SLOW) */
    bool slow_reads;            /* its pieces are known to be slow: made there from the first */
    const char *const *headers; /* more headers: name, value, ..., NULL; NULL: none */
    unsigned status;            /* 0: 200 */
    bool identity;              /* never gzip (a byte range): see www_wants_gzip */
    bool ranges;                /* Accept-Ranges: bytes */
    const char *content_range;  /* Content-Range, or NULL */
    uint64_t length;            /* a streamed answer's length when known (a range); 0: unknown */
};
/* A collection of more rows than this is streamed (listing.c), in batches of WWW_BATCH_MAX
   rows, or of a page in an order no index gives. */
#define WWW_PAGE_DEFAULT 2000
/* A streamed collection in an order no index gives is read `page` rows at a time (each
   batch is a sort of all its rows), and holds at most this many rows. */
#define WWW_SORT_ROWS_MAX 20000
#define WWW_BATCH_MAX 200
/* An answer longer than this is sent as the client reads it; its pieces are libmicrohttpd's
   blocks of WWW_STREAM_BLOCK. */
#define WWW_ANSWER_MAX (1024 * 1024)
#define WWW_STREAM_BLOCK (32 * 1024)
const char *www_json_type(enum www_json_style style);
/* How an /api/v2 answer to `req` goes out: its JSON type, kept by the cache under `key`,
   read when db_writes(its tables) was `writes`, counted in the server's budget. */
struct www_answer www_api_answer(struct www *w, const struct www_req *req, const char *key,
                                 unsigned long writes);
/* Does the client take gzip (Accept-Encoding), for an answer that may be compressed?  Answers
   shorter than WWW_GZIP_MIN never are; every other answer sent below is, when it does. */
bool www_wants_gzip(struct MHD_Connection *c, const struct www_answer *a);
#define WWW_GZIP_MIN 1024
/* Sends `text` (taken) whole. */
enum MHD_Result www_send_text(struct MHD_Connection *c, const struct www_answer *a, char *text,
                              size_t len);
/* Sends what `p` writes (it is freed once sent or on error); `what` names it in the log. */
enum MHD_Result www_send_stream(struct MHD_Connection *c, const struct www_answer *a,
                                const char *what, const struct www_producer *p);
/* A piece of a streamed log holds about this much (raw.c). */
#define WWW_PIECE_MAX (256 * 1024)
/* Log chunks read by one query. */
#define WWW_LOG_BATCH 8
/* A decoded chunk holding lines [first, last] of a log; false stops the reading. */
typedef bool (*www_chunk_cb)(const struct buf *text, long long first, long long last, void *arg);
/*
 * The chunks of log `logid` that hold lines from `from` to `last`, in line order, at most
 * WWW_LOG_BATCH of them (one query on a pooled connection), each decoded and given to cb.
 * 1 when more may follow (or cb stopped), 0 after the last, -1 on error (*cause).
 */
int www_log_chunks(struct www *w, long long logid, long long from, long long last, www_chunk_cb cb,
                   void *arg, char **cause);
typedef void (*www_line_cb)(struct buf *out, const char *line, size_t len, void *arg);
/*
 * Lines [*next, last] of log `logid`, a few chunks at a time: each goes to put()
 * until `out` holds WWW_PIECE_MAX bytes; *next is then the first line not given.
 * 1 while lines remain, 0 after the last, -1 on error (*cause).
 */
int www_log_lines(struct www *w, long long logid, long long *next, long long last, struct buf *out,
                  www_line_cb put, void *arg, char **cause);
/* search.c: GET /logs/N/search (see there). */
#define WWW_SEARCH_MS 1500     /* of scanning per request */
#define WWW_SEARCH_SNIPPET 300 /* bytes of a line's text in the answer */
/* Is `url` /logs/N/search (or under /all)?  *logid gets N. */
bool www_search_path(const char *url, long long *logid);
struct www_job;
/* Answers it; when it scans past the request thread's allowance, the rest of the scan is
   done on a thread for slow reads, left in *slot meanwhile. */
enum MHD_Result www_search(struct www *w, struct MHD_Connection *c, long long logid,
                           struct www_job **slot);

/* logindex.c: byte offsets in raw logs, for Range (see there). */
#define WWW_LOGIDX_SLOTS 16
#define WWW_LOGIDX_POINTS 1024
struct www_logidx;
struct www_logidx *www_logidx_new(void);
void www_logidx_free(struct www_logidx *x);
/* The length of lines [0, num_lines) of log `logid` in a raw download (`strip`: without
   their channel characters); reads what is not counted yet.  0, or -1 with *cause. */
int www_logidx_length(struct www *w, long long logid, bool strip, long long num_lines,
                      uint64_t *total, char **cause);
/* The last checkpoint at or before byte `at` of those lines: line *line starts at byte *offset
   (line 0 at byte 0 when the log is no longer kept). */
void www_logidx_seek(struct www *w, long long logid, bool strip, long long num_lines, uint64_t at,
                     long long *line, uint64_t *offset);

/* A GET on a collection (listing.c): whole when short, streamed when long.  When its
   first read is slow, it is made on a thread for slow reads, left in *slot meanwhile. */
enum MHD_Result www_list_answer(struct www *w, struct MHD_Connection *c, struct www_req *req,
                                const char *key, struct www_job **slot);

/* Where www.redirects sends `path` (a copy to free), or NULL (server.c). */
char *www_redirect(struct www *w, const char *path);
/* GET /config's text as the engine set it last (a copy to free; server.c). */
char *www_frontend_config(struct www *w);
/* The force schedulers' forms the engine set last (a new list; server.c). */
json_t *www_forceschedulers(struct www_req *req);

enum www_kind { WWW_COLLECTION, WWW_SINGLE, WWW_RAW };

/*
 * An endpoint fills `out` (an array of objects) and says whether the
 * database already filtered and paged it (Buildbot's meta.total then counts
 * the items returned).  Returns 0, or -1 with *cause (an internal error).
 */
struct www_endpoint {
    const char *patterns; /* Buildbot's pattern list for error texts: "/builds/n:buildid,..." */
    const struct www_rtype *type;
    enum www_kind kind;
    int (*get)(struct www_req *req, json_t *out, bool *paged, char **cause);
    /* Control actions this endpoint takes (NULL-terminated), posted to the engine. */
    const char *const *actions;
    /* The tables its answers come from (NULL-terminated), so that a kept answer outlives
       writes to others; NULL: a write to any table makes it stale. */
    const char *const *tables;
};

/* A raw download: chunks of text read one batch at a time. */
struct www_raw {
    char *content_type;
    char *filename; /* Content-Disposition attachment name, or NULL */
    char *prefix;   /* text sent first */
    long long logid;
    long long num_lines; /* the log's, when it was looked up */
    bool strip;          /* remove stdio channel prefixes */
    char *bytes;         /* a whole small answer instead of a log (build data) */
    size_t n_bytes;
};
void www_raw_free(struct www_raw *r);

/* The route table (api/routes.c): the endpoint for a path, in Buildbot's order. */
const struct www_endpoint *www_route(char *const *segs, size_t nsegs, struct www_args *args);
/* www_route of a path split in place (`args` points into it), NULL for none or too deep. */
const struct www_endpoint *www_route_path(char *path, struct www_args *args);
/* Buildbot's root links, for GET /api/v2. */
json_t *www_root_links(void);

/* Helpers for endpoints (api/common.c). */
struct db_res *www_select(struct www_req *req, const char *sql, const struct db_param *p, size_t n,
                          char **cause);
/* Runs "SELECT ... WHERE <base>" + the query's SQL filters/order/paging. */
struct db_res *www_select_query(struct www_req *req, const char *sql, const char *tiebreak,
                                const struct db_param *p, size_t n, bool *paged, char **cause);
json_t *www_col_int(const struct db_res *r, size_t row, size_t col);  /* null if NULL */
json_t *www_col_str(const struct db_res *r, size_t row, size_t col);  /* null if NULL */
json_t *www_col_bool(const struct db_res *r, size_t row, size_t col); /* integer 0/1 */
/* A JSON text column decoded (null if NULL or not JSON). */
json_t *www_col_json(const struct db_res *r, size_t row, size_t col);

/* conns.c: the connections of the web port and the deadlines of slow clients (see there). */
struct www_limits {
    unsigned max;    /* connections at once */
    unsigned per_ip; /* from one address */
    unsigned head_ms, body_ms, idle_ms;
};
enum www_conn_state {
    WWW_CONN_HEAD,   /* connected; the request head is not all there yet */
    WWW_CONN_BODY,   /* the head is there, the body not yet */
    WWW_CONN_ANSWER, /* the request is read: it is being answered */
    WWW_CONN_IDLE,   /* answered; waiting for the next request */
    WWW_CONN_CLOSING,
};
#define WWW_CONNS_DEFAULT 512
/* libmicrohttpd's buffers of a connection: request head, reads, writes.  32 KiB at most:
   a larger pool is mapped fresh for each connection (libmicrohttpd 0.9.75), 16 page
   faults that made a request on a new connection take three times as long. */
#define WWW_CONN_MEMORY (32 * 1024)
#define WWW_HEAD_TIMEOUT 10 /* seconds */
#define WWW_BODY_TIMEOUT 60
#define WWW_IDLE_TIMEOUT 30
struct www_conns;
/* Starts the watchdog; NULL with *cause.  Stop it before the daemon, free it after. */
struct www_conns *www_conns_start(const struct www_limits *lim, char **cause);
void www_conns_stop(struct www_conns *all);
void www_conns_free(struct www_conns *all);
/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the www_conns). */
void www_conns_notify_cb(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
/* Where a connection's request stands (sets its deadline). */
void www_conn_state(struct MHD_Connection *c, enum www_conn_state state);

/*
 * jobs.c: long answers (pages, slow reads) made on threads of their own while their
 * connection is suspended, so that they never hold up the request threads (see there).
 * A job is its maker's, embedded in a struct of its own: `run` works on a job thread;
 * then the connection is resumed and the request handler calls `answer` on a request
 * thread (`cancelled`: the master is stopping, answer 503), or `free` when the
 * connection is gone meanwhile.  A streamed answer's piece (stream.c) has neither:
 * libmicrohttpd calls the answer's content callback again.
 */
#define WWW_JOBS_QUEUE 256 /* jobs waiting at most; a request beyond is answered 503 */
/* A request thread serves every connection libmicrohttpd gave it, one after another: a
   read of the API that runs longer than this there is stopped, and made again on one of
   WWW_SLOW_THREADS threads of its own (server.c, listing.c, stream.c). */
#define WWW_QUICK_MS 50
#define WWW_SLOW_THREADS 2
struct www_job {
    void (*run)(struct www_job *job);
    enum MHD_Result (*answer)(struct www_job *job, struct MHD_Connection *c);
    void (*free)(struct www_job *job);
    struct MHD_Connection *conn;
    bool cancelled;
    struct www_job *next;
};
struct www_jobs;
/* `threads` threads (none started: jobs run where they are submitted). */
struct www_jobs *www_jobs_start(size_t threads);
/* The threads it has. */
size_t www_jobs_threads(const struct www_jobs *q);
/* The jobs it queued since it started. */
size_t www_jobs_taken(struct www_jobs *q);
struct www;
/* Queues `job` on the threads for slow reads (w->slow), left in *slot until it is answered;
   503 when the queue is full (the job freed). */
enum MHD_Result www_slow_submit(struct www *w, struct www_job *job, struct MHD_Connection *c,
                                struct www_job **slot);
/* Queues `job` for `c`, suspended: 0 queued, 1 run already (no job threads: answer
   now), -1 refused (the queue is full, or the pool stopping: answer 503). */
int www_jobs_submit(struct www_jobs *q, struct www_job *job, struct MHD_Connection *c);
/* Runs no more jobs: the running ones finish, the queued ones are resumed cancelled. */
void www_jobs_stop(struct www_jobs *q);
void www_jobs_free(struct www_jobs *q);
/* Puts the calling thread below the engine's priority (WWW_NICE), once. */
void www_lower_priority(void);

/* The web UI's pages, assets and robots.txt: every GET outside /api (ui/page.c).  A page
   that has to be rendered becomes a job, left in *job until it is answered. */
enum MHD_Result www_ui_answer(struct www *w, struct MHD_Connection *c, const char *url,
                              const char *method, struct www_job **job);
struct www_post;
/* A form of the web UI posted to `url` (ui/actions.c): checked, then its action posted. */
enum MHD_Result www_ui_post(struct www *w, struct MHD_Connection *c, const char *url,
                            struct www_post *p);
/* A failed action or form as a page: `status` and the message. */
enum MHD_Result www_ui_error(struct MHD_Connection *c, int status, const char *msg);

/* The state of /release_status (ui/release.h), one per server; set_cycle names the
   release-cycle file (relative to basedir; NULL: none) and reads it (`source`: the URL the
   master fetches that file from, or NULL).  start: the thread that reads its model and
   follows the engine's events (bus NULL: none); stop: that thread stopped (before the
   server's connections are closed). */
struct ui_release;
struct ui_release *www_release_new(void);
void www_release_free(struct ui_release *r);
void www_release_set_cycle(struct ui_release *r, const char *basedir, const char *file,
                           const char *source);
/* www.release_test_results: the directory of builds' JUnit files (NULL: none); read from
   the builds the model reads after it is set. */
void www_release_set_results(struct ui_release *r, const char *basedir, const char *dir);
void www_release_start(struct ui_release *r, struct www *w, struct ev_bus *bus);
void www_release_stop(struct ui_release *r);

/* The nice value of request threads, above the engine's (0): see server.c. */
#define WWW_NICE 5

/*
 * feed.c: live events for SSE (sse.c) and WebSocket (ws.c) clients.  A dispatcher thread
 * takes the engine's events from the bus, reads each entity once through the /api/v2
 * endpoint that serves it, and keeps the finished message (routing keys and entity JSON) in
 * a ring bounded by count and bytes.  Every client reads the ring with its own cursor; one
 * whose cursor the ring has passed is told to resync and dropped.  See
 * docs/internals/events.md.
 */
#define WWW_FEED_MSGS 4096                /* messages the ring keeps */
#define WWW_FEED_BYTES ((size_t)16 << 20) /* and their entities' bytes */
#define WWW_FEED_ENTITY_MAX (60 * 1024)   /* a longer entity is not sent (frames <= 64 KiB) */
#define WWW_FEED_APPEND_MS 500            /* log appends of one log: one per this at most */
#define WWW_FEED_APPEND_LOGS 256          /* logs whose appends wait to be coalesced */
#define WWW_SSE_MAX 256                   /* SSE streams at once */
#define WWW_SSE_KEEPALIVE_MS 15000
#define WWW_SSE_SNDBUF (64 * 1024) /* the kernel's send buffer of a stream's socket */
#define WWW_TOPICS_MAX 64          /* topics of a stream, subscriptions of a socket */
#define WWW_TOPIC_MAX 256          /* bytes of one */
#define WWW_KEY_MAX 512            /* bytes of a routing key */

struct www_feed_msg {
    uint64_t seq;
    unsigned n_keys;
    char *keys[3];
    char *entity; /* compact JSON */
    size_t len;
};
struct www_sse;
struct www_ws;
struct www_feed {
    struct www *w;
    struct ev_bus *bus;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock; /* everything below */
    bool stopping;
    struct www_feed_msg ring[WWW_FEED_MSGS];
    uint64_t head, tail; /* messages [tail, head) are in the ring; the first is 1 */
    size_t bytes;
    size_t max_msgs;         /* WWW_FEED_MSGS, or fewer (BBM_WWW_FEED_MSGS, for tests) */
    struct www_sse *streams; /* SSE clients (sse.c) */
    size_t n_streams;
    unsigned keepalive_ms;
    struct www_ws *ws; /* the WebSocket thread (ws.c), or NULL */
};
/* The feed of events from `bus` for server `w`; NULL (no events served) when bus is NULL. */
struct www_feed *www_feed_start(struct www *w, struct ev_bus *bus, char **cause);
/* Ends every stream and socket and stops the thread (before the daemon stops). */
void www_feed_stop(struct www_feed *f);
/* After the daemon has stopped. */
void www_feed_free(struct www_feed *f);
/* Does routing key `key` match `topic` (Buildbot's: segments by '/', '*' any one)? */
bool www_topic_match(const char *topic, const char *key);
/* Can `topic` be subscribed to (not empty, at most WWW_TOPIC_MAX bytes)? */
bool www_topic_ok(const char *topic);
/*
 * Under the feed's lock: calls put() for each message from *cursor on whose keys match one
 * of `topics`, once per matching key, and moves *cursor past it, until the ring's end or
 * `budget` bytes (about: entity and key) were given.  False when *cursor had fallen off the
 * ring (nothing is given).
 */
typedef void (*www_feed_put_cb)(void *arg, uint64_t seq, const char *key, const char *entity,
                                size_t len);
bool www_feed_take(struct www_feed *f, uint64_t *cursor, char *const *topics, size_t n_topics,
                   www_feed_put_cb put, void *arg, size_t budget);
/* Under the lock: is a message from `cursor` on for `topics`?  (Moves the cursor past those
   that are not.) */
bool www_feed_pending(struct www_feed *f, uint64_t *cursor, char *const *topics, size_t n_topics);
/* The entity at API path `path` ("builds/12") read through its endpoint; NULL if none. */
json_t *www_get_entity(struct www *w, struct db *db, const char *path, char **cause);
/* The builders with ids lo..hi as www_get_entity reads each (api/builds.c), three queries
   for all: a reconfig's update events, one per builder, read in batches. */
json_t *www_builders_between(struct www *w, struct db *db, long long lo, long long hi,
                             char **cause);

/* sse.c: GET /events?topic=... */
enum MHD_Result www_sse_open(struct www *w, struct MHD_Connection *c);
/* Under the feed's lock: resumes the streams that have something to send (or all when
   stopping). */
void www_sse_wake(struct www_feed *f, uint64_t now_ms);

/* ws.c: GET /ws, Buildbot's WebSocket protocol. */
#define WWW_WS_MAX 256               /* sockets at once */
#define WWW_WS_FRAME_MAX (64 * 1024) /* payload of a frame, or of a message's frames */
#define WWW_WS_OUT_MAX (256 * 1024)  /* bytes waiting to be written to one socket (about) */
struct www_ws *www_ws_start(struct www_feed *f, char **cause);
/* Closes every socket and stops the thread. */
void www_ws_stop(struct www_ws *ws);
void www_ws_free(struct www_ws *ws);
/* New messages (any thread). */
void www_ws_wake(struct www_ws *ws);
enum MHD_Result www_ws_open(struct www *w, struct MHD_Connection *c);

/* wsframe.c: RFC 6455 frames from a client (masked), taken apart without allocating. */
enum www_ws_op {
    WWW_WS_CONT = 0x0,
    WWW_WS_TEXT = 0x1,
    WWW_WS_BINARY = 0x2,
    WWW_WS_CLOSE = 0x8,
    WWW_WS_PING = 0x9,
    WWW_WS_PONG = 0xa,
};
struct www_ws_frame {
    bool fin;
    int op;
    size_t len; /* payload bytes, unmasked in place */
    unsigned char *payload;
};
/*
 * A frame at the start of data[0..len): returns the bytes it takes (its payload unmasked in
 * place), 0 when more bytes are needed, or -1 with *close_code (1002 a protocol error, 1009
 * too big) for a frame that breaks RFC 6455 or the bounds.
 */
long www_ws_frame_parse(unsigned char *data, size_t len, struct www_ws_frame *f, int *close_code);
/* Reassembles a message from frames (at most WWW_WS_FRAME_MAX bytes). */
struct www_ws_msg {
    struct buf text;
    int op; /* of the first frame; 0: none in progress */
};
/* 1 a whole message is in m->text, 0 more frames needed (or a control frame to answer by
   the caller), -1 with *close_code. */
int www_ws_msg_add(struct www_ws_msg *m, const struct www_ws_frame *f, int *close_code);
/* Appends a server frame (unmasked, FIN) of `op` with `len` bytes of payload to out. */
int www_ws_frame_put(struct buf *out, int op, const void *payload, size_t len);

/* The server (server.c) and its pieces: raw.c streams raw logs, rpc.c takes POSTs. */
#define WWW_POOL_MAX 32
#define WWW_MAX_DIALECTS 8
struct www_watch;
struct www {
    struct MHD_Daemon *daemon;
    char *db_url, *basedir, *buildbot_url;
    struct ctl_queue *control;
    struct www_watch *watch;
    pthread_mutex_t lock;
    struct db *idle[WWW_POOL_MAX];
    size_t n_idle;
    struct www_cache *cache;
    struct www_logidx *logidx;
    char *forceschedulers;               /* JSON text, under lock */
    char *frontend;                      /* GET /config's JSON text, under lock */
    char **redirect_from, **redirect_to; /* www.redirects, under lock */
    size_t n_redirects;
    char *dialects[WWW_MAX_DIALECTS]; /* webhook dialects, under lock */
    size_t n_dialects;
    size_t body_bytes;  /* POST bodies in flight (reserved), under lock */
    size_t page;        /* a collection longer than this is streamed, */
    size_t batch;       /* this many rows at a time */
    long long sort_max; /* rows a streamed answer may sort (WWW_SORT_ROWS_MAX) */
    size_t answer_max;  /* an answer longer than this is sent as the client reads it */
    unsigned search_ms; /* a log search scans this long at most (WWW_SEARCH_MS) */
    struct www_budget answers;
    struct www_limits lim;
    struct www_conns *conns;
    struct www_feed *feed; /* live events, or NULL */
    struct ui_release *release;
    struct www_jobs *jobs;   /* page renders */
    struct www_jobs *slow;   /* API reads that ran past quick_ms on a request thread */
    int quick_ms;            /* a request thread's read allowance (WWW_QUICK_MS) */
    struct www_auth *auth;   /* sessions, login and authorization (auth.c), under lock */
    struct www_oauth *oauth; /* GitHub logins in flight */
};
/* A read connection of the pool (opened when none is idle); NULL with *cause. */
struct db *www_pool_get(struct www *w, char **cause);
/* The same, bounded on a request thread: each query may run w->quick_ms there, and one
   that runs longer fails with db_overran (its caller hands the work to w->slow). */
struct db *www_pool_get_quick(struct www *w, char **cause);
/* Gives it back (closed when the pool is full). */
void www_pool_put(struct www *w, struct db *db);
/* Splits "a/b/c" in place into at most `max` segments; max + 1 when there are more. */
size_t www_split_path(char *path, char **segs, size_t max);
/* The path under /api/v2 of a URL, or NULL; sets *api_root for exactly "/api". */
const char *www_api_path(const char *url, bool *api_root);
enum MHD_Result www_send_bytes(struct MHD_Connection *c, int status, const char *type,
                               const char *disposition, const char *data, size_t len);
/* Buildbot's {"error": msg} answer. */
enum MHD_Result www_send_error(struct MHD_Connection *c, int status, const char *msg);
/* The same with 503 and Retry-After: the master cannot take the request now (stream.c). */
enum MHD_Result www_send_busy(struct MHD_Connection *c, const char *msg);
/* A GET the database failed (logged): 503 with Retry-After and "the database is
   unavailable: ..." when it was `lost` (db_lost, or no connection), else Buildbot's 500. */
enum MHD_Result www_send_db_error(struct MHD_Connection *c, const char *path, bool lost,
                                  const char *cause);
/* Queues the raw answer `raw` (owned), streamed from the database. */
enum MHD_Result www_send_raw(struct www *w, struct MHD_Connection *c, struct www_raw *raw);
/* A JSON-RPC error answer as Buildbot writes it. */
enum MHD_Result www_rpc_error(struct MHD_Connection *c, int status, json_t *id, int code,
                              const char *msg);

/*
 * session.c: Buildbot's sessions, an HS256 JWT {"user_info": {...}, "exp": N} in the
 * TWISTED_SESSION cookie, signed with the secret Buildbot keeps in object_state.
 */
#define WWW_SESSION_COOKIE "TWISTED_SESSION"
#define WWW_SESSION_TOKEN_MAX 8192      /* longer tokens are not read (browsers keep 4 KB) */
#define WWW_SESSION_TTL (7 * 24 * 3600) /* Buildbot's cookie_expiration_time default */
/* The base64url HS256 signature of n bytes of `data` (malloc'd). */
char *www_jwt_sign(const char *secret, const char *data, size_t n);
/* PyJWT's token of {"user_info": user_info, "exp": exp}, signed with `secret` (malloc'd). */
char *www_jwt_encode(const char *secret, const json_t *user_info, long long exp);
/* The user_info (an object) of the n bytes of `token` if it is an HS256 token signed with
   `secret`, valid at `now`, else NULL. */
json_t *www_jwt_decode(const char *secret, const char *token, size_t n, long long now);
/* The value of cookie `name` in a Cookie header (quotes dropped): true, *value and *len. */
bool www_cookie_find(const char *header, const char *name, const char **value, size_t *len);
/* {"anonymous": true} */
json_t *www_session_anonymous(void);
/* The request's user_info: the trusted proxy's header (remote_user_auth), else the session
   cookie's, else anonymous.  Never NULL. */
json_t *www_session_user(struct www *w, struct MHD_Connection *c);
/* The user_info of a WebSocket handshake as Buildbot's ws.py reads it: the session
   cookie's, anonymous without one, but NULL for a cookie that is not a valid token (ws.py
   then denies the connection); bbmaster also takes remote_user_auth's header first. */
json_t *www_session_ws_user(struct www *w, struct MHD_Connection *c);
/* The Set-Cookie value of a session for user_info (malloc'd), or NULL without a secret. */
char *www_session_cookie(struct www *w, const json_t *user_info);
/* buildbotURL#<the request's ?redirect, or "/"> (malloc'd). */
char *www_session_redirect(struct www *w, struct MHD_Connection *c);
/* 302 to www_session_redirect with the session cookie of user_info. */
enum MHD_Result www_session_answer(struct www *w, struct MHD_Connection *c,
                                   const json_t *user_info);
enum MHD_Result www_session_logout(struct www *w, struct MHD_Connection *c);
/* Who a user is in logs and as a build's owner, as Buildbot's rest.py names it: the email,
   else the username, else the full name, else "anonymous". */
const char *www_user_name(const json_t *user_info);

/*
 * auth.c: www.auth (who may log in and how) and www.authz (what each user may do), as
 * the engine hands them over with www_set_auth; reference counted, replaced whole.
 */
#define WWW_AUTH_HEADER_MAX 1024  /* remote_user_auth: a longer header is no user */
#define WWW_AUTH_LINE_MAX 4096    /* htpasswd_auth: a longer line is skipped, with a word */
#define WWW_AUTH_LINES_MAX 100000 /* htpasswd_auth: lines read, at most */
struct www_auth;
struct www_authz;
/* The current configuration, held (NULL: none yet); given back with www_auth_put. */
struct www_auth *www_auth_get(struct www *w);
void www_auth_put(struct www_auth *a);
const char *www_auth_secret(const struct www_auth *a);
long long www_auth_ttl(const struct www_auth *a);
struct www_authz *www_auth_authz(const struct www_auth *a); /* NULL: everything allowed */
/* Whether /auth/login logs users in (with a password, or at GitHub). */
bool www_auth_can_login(const struct www_auth *a);
/* remote_user_auth: the user_info the trusted proxy's header gives, or NULL; then, if
   `warning` is not NULL, *warning is Buildbot's on_load_warning for a missing or unmatched
   header (malloc'd), else NULL. */
json_t *www_auth_remote_user(struct www *w, struct MHD_Connection *c, char **warning);
/* www.authz's refusal of `method` on /api/v2/`path` for `user` (malloc'd), or NULL
   (allowed, or a path with no endpoint). */
char *www_action_denied(struct www *w, const char *path, const char *method, const json_t *params,
                        const json_t *user);
/* The refusal of a read (`plural`'s endpoint, action "get") for the request's user, or
   NULL; Buildbot checks ('masters', 'get') for /ws and /events. */
char *www_read_denied(struct www *w, struct MHD_Connection *c, const char *path);
/* The same for a given user_info. */
char *www_user_read_denied(struct www *w, const json_t *user, const char *path);
/*
 * digest.c: HTTP Digest credentials (RFC 2617, as Twisted's DigestCredentialFactory with
 * MD5 and realm "buildbot"): the parser, the stateless challenge and the checks.
 */
#define WWW_DIGEST_REALM "buildbot"
#define WWW_DIGEST_HEADER_MAX 4096    /* the Authorization value after "Digest " */
#define WWW_DIGEST_LIFETIME (15 * 60) /* a challenge's seconds, as Twisted's */
#define WWW_DIGEST_KEY_LEN 32
enum www_digest_key {
    WWW_DIGEST_USERNAME,
    WWW_DIGEST_REALM_KEY,
    WWW_DIGEST_NONCE,
    WWW_DIGEST_URI,
    WWW_DIGEST_RESPONSE,
    WWW_DIGEST_OPAQUE,
    WWW_DIGEST_QOP,
    WWW_DIGEST_NC,
    WWW_DIGEST_CNONCE,
    WWW_DIGEST_ALGORITHM,
    WWW_DIGEST_NFIELDS
};
struct www_digest {
    char *fields[WWW_DIGEST_NFIELDS]; /* unquoted values in buf, or NULL */
    char *buf;
};
/* The credentials after "Digest " (username, nonce, opaque, uri and response required):
   0, or -1 and *cause (malloc'd).  Free with www_digest_clear. */
int www_digest_parse(const char *params, struct www_digest *d, char **cause);
void www_digest_clear(struct www_digest *d);
const char *www_digest_field(const struct www_digest *d, enum www_digest_key k);
/* The WWW-Authenticate value of a new challenge for `client` (its address) at `now`
   (malloc'd); `key` is WWW_DIGEST_KEY_LEN random bytes. */
char *www_digest_challenge(const unsigned char *key, const char *client, long long now);
/* Whether the credentials answer a challenge made with `key` for `client`, at most
   WWW_DIGEST_LIFETIME seconds before `now`. */
bool www_digest_opaque_ok(const unsigned char *key, const struct www_digest *d, const char *client,
                          long long now);
/* Whether the response is the one `password` gives for `method`. */
bool www_digest_check(const struct www_digest *d, const char *method, const char *password);

/* /auth/login and /auth/logout (also under /all/); -1 for another path.  A GitHub login
   waits for GitHub with its connection suspended, left in *job until it is answered. */
enum MHD_Result www_auth_route(struct www *w, struct MHD_Connection *c, const char *url,
                               struct www_job **job);

/*
 * oauth.c: github_auth's login (Buildbot's GitHubAuth, API v3 or v4): the calls to GitHub run on
 * a libuv loop of its own while the request's connection is suspended.
 */
#define WWW_OAUTH_COOKIE "BBM_OAUTH_STATE" /* the login's nonce, also in its state */
#define WWW_OAUTH_STATE_TTL 600            /* seconds a login may take at GitHub */
#define WWW_OAUTH_LOGINS 16                /* logins waiting for GitHub at once, at most */
#define WWW_OAUTH_TIMEOUT 10               /* seconds per call to GitHub */
#define WWW_OAUTH_BODY_MAX (1024 * 1024)   /* the most of an answer of GitHub's */
#define WWW_OAUTH_PAGES 10                 /* pages of organizations (or teams) read, at most */
#define WWW_OAUTH_TEAMS_MAX 10000          /* "org/team" groups read, at most */
#define WWW_OAUTH_GROUPS_BYTES 2048        /* the session's groups, at most (cookies: 4 KB) */
#define WWW_OAUTH_INFO_BYTES 2800          /* its whole user_info as JSON, at most */
#define WWW_OAUTH_REDIRECT_MAX 1024        /* a longer ?redirect is dropped */
#define WWW_OAUTH_CODE_MAX 512             /* a longer ?code is refused */
#define WWW_OAUTH_NAME_MAX 256             /* a user's longer name, email or login: refused */
struct www_oauth;
struct www_oauth *www_oauth_start(void);
/* Drops the calls in flight; their connections are resumed cancelled (answered 503). */
void www_oauth_stop(struct www_oauth *o);
void www_oauth_free(struct www_oauth *o);
/* GET /auth/login with github_auth (`conf`: www.auth and www.authz). */
enum MHD_Result www_oauth_login(struct www *w, struct MHD_Connection *c, const json_t *conf,
                                struct www_job **job);
/* Appends name=value to a form (x-www-form-urlencoded), '&' first when b is not empty. */
void www_form_add(struct buf *b, const char *name, const char *value);
/* The decoded value of `name` in the `len` bytes of a form (malloc'd), or NULL. */
char *www_form_value(const char *form, size_t len, const char *name);
/* The access token of GitHub's answer to the code (form or JSON; malloc'd), or NULL with
 *error (GitHub's error_description, else its error; malloc'd). */
char *www_oauth_token_parse(const char *body, size_t len, char **error);
/* The rel="next" URL of a Link header (malloc'd), or NULL. */
char *www_oauth_link_next(const char *link);

/*
 * rpc.c: a request's body and, once posted, its action.  The body's bound is
 * chosen in the request's first callback from its route (an API POST, a
 * configured webhook, or nothing), before any byte of it is kept.
 */
#define WWW_API_BODY_MAX (1024 * 1024)
#define WWW_HOOK_BODY_MAX (25 * 1024 * 1024) /* GitHub sends at most 25 MB */
#define WWW_FORM_BODY_MAX (64 * 1024)        /* a form of the web UI */
#define WWW_BODY_BUDGET (64 * 1024 * 1024)   /* all bodies in flight, per server */
/* What a JSON-RPC body may make the request thread parse (a force on a thousand builders
   is a few thousand values). */
#define WWW_RPC_MAX_VALUES 100000
#define WWW_RPC_MAX_OBJECTS 10000
enum www_post_kind { WWW_POST_NONE, WWW_POST_API, WWW_POST_HOOK, WWW_POST_FORM };
struct www_post {
    enum www_post_kind kind;
    struct buf body;
    size_t limit;           /* bytes the body may have */
    size_t reserved;        /* bytes of the servers' body budget held */
    bool too_big;           /* more came than `limit`: the rest was dropped */
    bool refused;           /* answered in the first callback */
    char *dialect;          /* a webhook's */
    struct ctl_action *act; /* posted (a reference, while the request lasts) */
    struct www_wait *wait;  /* the wait for its answer; lives as long as act */
    json_t *id;             /* the JSON-RPC id to answer with */
    char *back;             /* a form's: the page to go back to once done */
};
/* The first callback of every request: MHD_YES to go on, or the refusal queued now. */
enum MHD_Result www_post_open(struct www *w, struct MHD_Connection *c, const char *url,
                              const char *method, struct www_post *p);
/* Body bytes as they come (kept up to the bound, the rest dropped). */
void www_post_feed(struct www_post *p, const char *data, size_t len);
/* A POST to /api/v2/PATH: a JSON-RPC control action, posted to the engine. */
enum MHD_Result www_handle_post(struct www *w, struct MHD_Connection *c, const char *path,
                                struct www_post *p);
/*
 * A control action taken by JSON-RPC (kind API) or by a web UI form (kind FORM): on the
 * resource at `path` (an /api/v2 path), `method` with `params`, posted to the engine.
 */
enum MHD_Result www_post_action(struct www *w, struct MHD_Connection *c, const char *path,
                                struct www_post *p, const char *method, json_t *id, json_t *params);
/* A webhook to a configured dialect, posted to the engine. */
enum MHD_Result www_handle_hook(struct www *w, struct MHD_Connection *c, struct www_post *p);
/* The request came back (resumed, or refused at once): its answer. */
enum MHD_Result www_post_answer(struct www *w, struct MHD_Connection *c, struct www_post *p);
/* The request is over: its action, wait and body budget go. */
void www_post_done(struct www *w, struct www_post *p);

/* wait.c: waiting for the engine's answer with the connection suspended (see there). */
#define WWW_ACTION_WAIT_MS 30000
enum www_outcome {
    WWW_WAITING,
    WWW_ANSWERED,  /* the engine's answer is in the action */
    WWW_TIMED_OUT, /* not answered within the bound */
    WWW_GONE,      /* the client closed its connection */
    WWW_REFUSED,   /* the queue was full or closed */
    WWW_SHUTDOWN,  /* the server stops */
};
struct www_wait;
struct www_watch *www_watch_start(int wait_ms, char **cause);
/*
 * Settles every wait (503, actions cancelled), gives the resumed requests at
 * most `drain_ms` to be answered, and stops the thread.
 */
#define WWW_STOP_DRAIN_MS 1000
void www_watch_stop(struct www_watch *wd, int drain_ms);
/* After the daemon has stopped. */
void www_watch_free(struct www_watch *wd);
/*
 * Pushes `act` (the caller keeps its reference) and suspends `c` until it is
 * answered; *out gets the wait.  False when it was settled at once (refused,
 * stopping, or already answered): answer now, the connection is not suspended.
 */
bool www_wait_post(struct www *w, struct MHD_Connection *c, struct ctl_action *act,
                   struct www_wait **out);
/* How the wait ended (WWW_WAITING while it lasts); *refused gets the queue's reason. */
enum www_outcome www_wait_outcome(struct www_wait *wt, const char **refused);
/* The request is over: out of the watchdog's list, its action cancelled if still queued. */
void www_wait_done(struct www *w, struct www_wait *wt);

#endif
