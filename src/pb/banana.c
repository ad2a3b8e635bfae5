/*
 * Banana, Twisted's framing: every token is a base-128 header (least
 * significant group first, at most 64 bytes), a type byte, and for strings and
 * floats a payload.  Lists nest by element count, so the decoder keeps a stack
 * of open lists and works token by token: bytes are consumed as soon as a
 * token is whole, and only an incomplete token stays buffered.  That keeps
 * decoding linear however the peer splits its writes, and every length, the
 * nesting and the size of one expression are bounded by the connection's
 * limits (pb.h), which a server raises once its peer has logged in.
 */
#include "pb/pb.h"

#include <stdlib.h>
#include <string.h>

enum {
    T_LIST = 0x80,
    T_INT = 0x81,
    T_STRING = 0x82,
    T_NEG = 0x83,
    T_FLOAT = 0x84,
    T_LONGINT = 0x85,
    T_LONGNEG = 0x86,
    T_VOCAB = 0x87,
};

static const char *const vocab[] = {
    NULL,           "None",     "class",         "dereference", "reference",
    "dictionary",   "function", "instance",      "list",        "module",
    "persistent",   "tuple",    "unpersistable", "copy",        "cache",
    "cached",       "remote",   "local",         "lcache",      "version",
    "login",        "password", "challenge",     "logged_in",   "not_logged_in",
    "cachemessage", "message",  "answer",        "error",       "decref",
    "decache",      "uncache",
};

const char *pb_vocab_word(int index)
{
    return index >= 1 && index < (int)UTIL_NELEM(vocab) ? vocab[index] : NULL;
}

/* ------------------------------------------------------------ limits */

const struct pb_limits pb_limits_login = {
    .max_expr = PB_LOGIN_MAX_EXPR,
    .max_nodes = PB_LOGIN_MAX_NODES,
    .max_length = PB_LOGIN_MAX_LENGTH,
    .max_depth = PB_LOGIN_MAX_DEPTH,
    .max_calls = PB_LOGIN_MAX_CALLS,
    .max_objects = PB_LOGIN_MAX_OBJECTS,
};

const struct pb_limits pb_limits_session = {
    .max_expr = PB_MAX_EXPR,
    .max_nodes = PB_MAX_NODES,
    .max_length = PB_MAX_LENGTH,
    .max_depth = PB_MAX_DEPTH,
    .max_calls = PB_MAX_PENDING,
    .max_objects = PB_MAX_LOCAL_OBJECTS,
};

/* ------------------------------------------------------------ decoder */

struct frame {
    struct pb_value *list;
    size_t remaining;
};

struct pb_decoder {
    struct buf in;
    size_t pos; /* first unconsumed byte of `in` */
    struct frame stack[PB_MAX_DEPTH];
    int depth;
    size_t expr_bytes; /* consumed by the expression being decoded */
    size_t nodes;
    bool failed;
    const struct pb_limits *lim;
};

void pb_decoder_set_limits(struct pb_decoder *d, const struct pb_limits *lim)
{
    d->lim = lim != NULL ? lim : &pb_limits_session;
    /* one expression, and the incomplete token after it */
    size_t max = d->lim->max_expr + d->lim->max_length + PB_MAX_HEADER + 16;
    d->in.max = max > d->in.len ? max : d->in.len;
}

struct pb_decoder *pb_decoder_new(const struct pb_limits *lim)
{
    struct pb_decoder *d = xcalloc(1, sizeof *d);
    buf_init(&d->in, 0);
    pb_decoder_set_limits(d, lim);
    return d;
}

static void drop_stack(struct pb_decoder *d)
{
    if (d->depth > 0)
        pb_value_free(d->stack[0].list);
    d->depth = 0;
}

void pb_decoder_free(struct pb_decoder *d)
{
    if (d == NULL)
        return;
    drop_stack(d);
    buf_free(&d->in);
    free(d);
}

int pb_decoder_feed(struct pb_decoder *d, const void *data, size_t len, char **cause)
{
    if (d->pos > 0) {
        buf_consume(&d->in, d->pos);
        d->pos = 0;
    }
    if (buf_add(&d->in, data, len) != 0)
        return util_cause(cause, "banana: more than %zu bytes pending in one expression",
                          d->in.max);
    return 0;
}

static int fail(struct pb_decoder *d, char **cause, const char *msg)
{
    d->failed = true;
    drop_stack(d);
    return util_cause(cause, "banana: %s", msg);
}

/* An integer token: int64 when it fits, else the groups as a PB_BIGINT. */
static struct pb_value *make_int(const unsigned char *hdr, size_t n, bool neg)
{
    while (n > 0 && hdr[n - 1] == 0)
        n--;
    if (n <= 9) {
        uint64_t mag = 0;
        for (size_t i = 0; i < n; i++)
            mag |= (uint64_t)hdr[i] << (7 * i);
        if (mag <= (uint64_t)INT64_MAX)
            return pb_int(neg ? -(int64_t)mag : (int64_t)mag);
    }
    struct pb_value *v = pb_bytes(hdr, n);
    v->kind = PB_BIGINT;
    v->u.s.neg = neg;
    return v;
}

/*
 * Decodes one token at the current position.  Returns 1 with *atom set (or
 * NULL when a list was opened), 0 if the token is incomplete, -1 on error.
 */
static int token(struct pb_decoder *d, struct pb_value **atom, char **cause)
{
    const unsigned char *p = (const unsigned char *)d->in.data + d->pos;
    size_t avail = d->in.len - d->pos, n = 0;
    while (n < avail && p[n] < 0x80) {
        if (++n > PB_MAX_HEADER)
            return fail(d, cause, "more than 64 bytes of header (Twisted's limit)");
    }
    if (n == avail)
        return 0;
    uint64_t len = 0;
    for (size_t i = 0; i < n && i < 9; i++)
        len |= (uint64_t)p[i] << (7 * i);
    bool big = false;
    for (size_t i = 9; i < n; i++)
        big |= p[i] != 0;
    unsigned type = p[n];
    size_t used = n + 1;
    *atom = NULL;
    switch (type) {
    case T_LIST:
        if (big || len > d->lim->max_length)
            return fail(d, cause, "list longer than the connection allows");
        if (d->depth >= d->lim->max_depth || d->depth >= PB_MAX_DEPTH)
            return fail(d, cause, "lists nested too deeply");
        d->stack[d->depth].list = pb_list();
        d->stack[d->depth].remaining = (size_t)len;
        if (d->depth > 0)
            pb_append(d->stack[d->depth - 1].list, d->stack[d->depth].list);
        d->depth++;
        break;
    case T_STRING:
        if (big || len > d->lim->max_length)
            return fail(d, cause, "string longer than the connection allows");
        if (avail - used < len)
            return 0;
        *atom = pb_bytes(p + used, (size_t)len);
        used += (size_t)len;
        break;
    case T_FLOAT: {
        if (avail - used < 8)
            return 0;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | p[used + i];
        double f;
        memcpy(&f, &bits, sizeof f);
        *atom = pb_float(f);
        used += 8;
        break;
    }
    case T_INT:
    case T_LONGINT:
    case T_NEG:
    case T_LONGNEG:
        *atom = make_int(p, n, type == T_NEG || type == T_LONGNEG);
        break;
    case T_VOCAB: {
        const char *word = big ? NULL : pb_vocab_word((int)(len > 64 ? 0 : len));
        if (word == NULL)
            return fail(d, cause, "unknown vocabulary number");
        *atom = pb_bytes(word, strlen(word));
        break;
    }
    default:
        return fail(d, cause, "invalid type byte");
    }
    d->pos += used;
    d->expr_bytes += used;
    if (d->expr_bytes > d->lim->max_expr || ++d->nodes > d->lim->max_nodes) {
        pb_value_free(*atom);
        return fail(d, cause, "expression too large");
    }
    return 1;
}

/* Adds a finished value to the open list; returns the top-level value once complete. */
static struct pb_value *complete(struct pb_decoder *d, struct pb_value *v)
{
    if (v != NULL) {
        if (d->depth == 0)
            return v;
        pb_append(d->stack[d->depth - 1].list, v);
        d->stack[d->depth - 1].remaining--;
    } else {
        /* a list was just opened; it is complete at once if empty */
        if (d->stack[d->depth - 1].remaining > 0)
            return NULL;
        d->stack[d->depth - 1].remaining = 0;
        if (d->depth > 1)
            d->stack[d->depth - 2].remaining--;
        else {
            d->depth = 0;
            return d->stack[0].list;
        }
        d->depth--;
    }
    while (d->depth > 0 && d->stack[d->depth - 1].remaining == 0) {
        struct pb_value *done = d->stack[--d->depth].list;
        if (d->depth == 0)
            return done;
        d->stack[d->depth - 1].remaining--;
    }
    return NULL;
}

int pb_decoder_next(struct pb_decoder *d, struct pb_value **out, char **cause)
{
    if (d->failed)
        return util_cause(cause, "banana: the stream is unusable after an error");
    for (;;) {
        struct pb_value *atom = NULL;
        int rc = token(d, &atom, cause);
        if (rc <= 0)
            return rc;
        struct pb_value *top = complete(d, atom);
        if (top != NULL) {
            d->expr_bytes = 0;
            d->nodes = 0;
            *out = top;
            return 1;
        }
    }
}

/* ------------------------------------------------------------ encoder */

static void put_header(struct buf *out, uint64_t v)
{
    do {
        buf_addc(out, (char)(v & 0x7f));
        v >>= 7;
    } while (v != 0);
}

static void put_int(struct buf *out, int64_t v)
{
    if (v >= 0) {
        put_header(out, (uint64_t)v);
        buf_addc(out, (char)(v <= 0x7fffffff ? T_INT : T_LONGINT));
    } else {
        uint64_t mag = (uint64_t)(-(v + 1)) + 1;
        put_header(out, mag);
        buf_addc(out, (char)(mag <= 0x80000000u ? T_NEG : T_LONGNEG));
    }
}

static int put_string(struct buf *out, const struct pb_value *v, bool vocab_on, char **cause)
{
    if (v->u.s.len > PB_MAX_LENGTH)
        return util_cause(cause, "banana: string of %zu bytes is over the limit", v->u.s.len);
    if (vocab_on) {
        for (int i = 1; i < (int)UTIL_NELEM(vocab); i++) {
            if (strlen(vocab[i]) == v->u.s.len && memcmp(vocab[i], v->u.s.data, v->u.s.len) == 0) {
                put_header(out, (uint64_t)i);
                buf_addc(out, (char)T_VOCAB);
                return 0;
            }
        }
    }
    put_header(out, v->u.s.len);
    buf_addc(out, (char)T_STRING);
    buf_add(out, v->u.s.data, v->u.s.len);
    return 0;
}

int pb_banana_encode(struct buf *out, const struct pb_value *v, bool vocab_on, char **cause)
{
    switch (v->kind) {
    case PB_INT:
        put_int(out, v->u.i);
        return 0;
    case PB_BIGINT:
        if (v->u.s.len > PB_MAX_HEADER)
            return util_cause(cause, "banana: integer too large");
        buf_add(out, v->u.s.data, v->u.s.len);
        buf_addc(out, (char)(v->u.s.neg ? T_LONGNEG : T_LONGINT));
        return 0;
    case PB_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->u.f, sizeof bits);
        buf_addc(out, (char)T_FLOAT);
        for (int i = 7; i >= 0; i--)
            buf_addc(out, (char)(bits >> (8 * i)));
        return 0;
    }
    case PB_BYTES:
        return put_string(out, v, vocab_on, cause);
    case PB_LIST:
        if (v->u.list.n > PB_MAX_LENGTH)
            return util_cause(cause, "banana: list of %zu elements is over the limit", v->u.list.n);
        put_header(out, v->u.list.n);
        buf_addc(out, (char)T_LIST);
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (pb_banana_encode(out, v->u.list.items[i], vocab_on, cause) != 0)
                return -1;
        }
        return 0;
    default:
        return util_cause(cause, "banana: cannot encode a jelly-level value directly");
    }
}
