/*
 * Unit tests for the banana and jelly layers against the real thing: the
 * encoding vectors produced by Twisted, every expression of the four recorded
 * Buildbot sessions (decoded and re-encoded byte for byte), the raw capture
 * streams fed in random pieces, and malformed or oversized input, which must
 * give an error and never a crash (the suite also runs under ASan+UBSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb/pb.h"

static size_t unhex(const char *hex, unsigned char **out)
{
    size_t n = strlen(hex) / 2;
    *out = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        (*out)[i] = (unsigned char)v;
    }
    return n;
}

static char *tohex(const char *data, size_t len)
{
    char *s = xmalloc(2 * len + 1);
    for (size_t i = 0; i < len; i++)
        sprintf(s + 2 * i, "%02x", (unsigned char)data[i]);
    s[2 * len] = '\0';
    return s;
}

/* Decodes exactly one expression from `hex`; fails the test otherwise. */
static struct pb_value *decode_one(const char *hex)
{
    unsigned char *bytes;
    size_t n = unhex(hex, &bytes);
    struct pb_decoder *d = pb_decoder_new(NULL);
    char *cause = NULL;
    struct pb_value *v = NULL;
    assert_int_equal(pb_decoder_feed(d, bytes, n, &cause), 0);
    int rc = pb_decoder_next(d, &v, &cause);
    if (rc != 1)
        fail_msg("%s: decode gave %d (%s)", hex, rc, cause ? cause : "");
    assert_int_equal(pb_decoder_next(d, &(struct pb_value *){NULL}, &cause), 0);
    pb_decoder_free(d);
    free(bytes);
    free(cause);
    return v;
}

static void assert_encodes_to(const struct pb_value *tree, bool vocab, const char *hex)
{
    struct buf out;
    buf_init(&out, 0);
    char *cause = NULL;
    assert_int_equal(pb_banana_encode(&out, tree, vocab, &cause), 0);
    char *got = tohex(out.data, out.len);
    if (strcmp(got, hex) != 0)
        fail_msg("re-encoding differs:\n  want %s\n  got  %s", hex, got);
    free(got);
    buf_free(&out);
}

static json_t *load_json(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BBM_SHARED_DIR, rel);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (j == NULL)
        fail_msg("%s: %s", path, err.text);
    return j;
}

static bool contains_reference(const struct pb_value *tree)
{
    if (tree->kind != PB_LIST)
        return false;
    const char *tag = pb_str(pb_item(tree, 0));
    if (tag != NULL && (strcmp(tag, "reference") == 0 || strcmp(tag, "dereference") == 0))
        return true;
    for (size_t i = 0; i < pb_len(tree); i++)
        if (contains_reference(pb_item(tree, i)))
            return true;
    return false;
}

/* Twisted's encoding vectors: decode, check the value where simple, re-encode. */
static void test_vectors(void **state)
{
    (void)state;
    json_t *vectors = load_json("spec/pb/encoding-vectors.json");
    size_t i, jelly_roundtrips = 0, refs = 0;
    json_t *v;
    json_array_foreach(vectors, i, v)
    {
        const char *layer = json_string_value(json_object_get(v, "layer"));
        const char *hex = json_string_value(json_object_get(v, "hex"));
        const char *python = json_string_value(json_object_get(v, "python"));
        struct pb_value *tree = decode_one(hex);
        bool vocab = strcmp(layer, "banana-none") != 0;
        assert_encodes_to(tree, vocab, hex);
        char *end;
        long long num = strtoll(python, &end, 10);
        if (*end == '\0' && strlen(python) < 19) {
            assert_int_equal(tree->kind, PB_INT);
            assert_int_equal(tree->u.i, num);
        }
        if (strcmp(layer, "jelly+pb") == 0) {
            struct pb_value *val = NULL;
            char *cause = NULL;
            assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &val, &cause), 0);
            struct pb_value *again = pb_jelly(val);
            if (contains_reference(tree)) {
                refs++; /* shared containers come back as copies: same value, no reference */
                assert_int_equal(val->kind, PB_LIST);
                assert_true(pb_value_equal(pb_item(val, 0), pb_item(val, 1)));
            } else {
                assert_encodes_to(again, true, hex);
                jelly_roundtrips++;
            }
            pb_value_free(again);
            pb_value_free(val);
            free(cause);
        }
        pb_value_free(tree);
    }
    assert_int_equal(i, 40);
    assert_int_equal(jelly_roundtrips, 16);
    assert_int_equal(refs, 1);
    json_decref(vectors);
}

static void test_jelly_values(void **state)
{
    (void)state;
    char *cause = NULL;
    struct pb_value *tree = decode_one("02800782756e69636f6465038268c3a9"), *v = NULL;
    assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), 0);
    assert_int_equal(v->kind, PB_TEXT);
    assert_string_equal(pb_str(v), "h\xc3\xa9");
    pb_value_free(v);
    pb_value_free(tree);
    tree = decode_one("02800587028002800782756e69636f646501826b01800187");
    assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), 0);
    assert_int_equal(v->kind, PB_DICT);
    assert_int_equal(pb_dict_get(v, "k")->kind, PB_NONE);
    assert_null(pb_dict_get(v, "missing"));
    pb_value_free(v);
    pb_value_free(tree);
    free(cause);
}

/* Every recorded expression of the four sessions, both levels. */
static void test_transcripts(void **state)
{
    (void)state;
    json_t *doc = load_json("fixtures/pb/transcript.json");
    const char *session;
    json_t *s;
    size_t total = 0;
    json_object_foreach(doc, session, s)
    {
        bool seen_m2w = false, seen_w2m = false;
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(s, "messages"), i, m)
        {
            const char *dir = json_string_value(json_object_get(m, "dir"));
            const char *hex = json_string_value(json_object_get(m, "hex"));
            bool *seen = strcmp(dir, "m2w") == 0 ? &seen_m2w : &seen_w2m;
            bool vocab = *seen; /* the first expression each way precedes the dialect */
            *seen = true;
            struct pb_value *tree = decode_one(hex);
            assert_encodes_to(tree, vocab, hex);
            pb_value_free(tree);
            total++;
        }
    }
    assert_int_equal(total, 191);
    json_decref(doc);
}

/* PB messages are lists whose parts are jelly values; unjelly each part of each message. */
static void test_transcript_messages_unjelly(void **state)
{
    (void)state;
    json_t *doc = load_json("fixtures/pb/transcript.json");
    const char *session;
    json_t *s;
    size_t parts = 0;
    json_object_foreach(doc, session, s)
    {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(s, "messages"), i, m)
        {
            struct pb_value *tree = decode_one(json_string_value(json_object_get(m, "hex")));
            const char *kind = pb_str(pb_item(tree, 0));
            size_t first = 0;
            if (kind != NULL && strcmp(kind, "message") == 0)
                first = 5; /* reqid, objid, method, answerRequired, then args, kwargs */
            else if (kind != NULL && (strcmp(kind, "answer") == 0 || strcmp(kind, "error") == 0))
                first = 2;
            for (size_t k = first; first > 0 && k < pb_len(tree); k++) {
                struct pb_value *val = NULL;
                char *cause = NULL;
                const struct pb_value *part = pb_item(tree, k);
                if (pb_unjelly(part, PB_MAX_NODES, &val, &cause) != 0)
                    fail_msg("session %s message %zu part %zu: %s", session, i, k, cause);
                struct pb_value *again = pb_jelly(val);
                if (!contains_reference(part))
                    assert_true(pb_value_equal(again, part));
                pb_value_free(again);
                pb_value_free(val);
                parts++;
            }
            pb_value_free(tree);
        }
    }
    assert_true(parts > 150);
    json_decref(doc);
}

static size_t count_stream(const char *rel, unsigned seed)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", BBM_SHARED_DIR, rel);
    size_t len = 0;
    char *cause = NULL;
    char *data = util_read_file(path, 1 << 20, &len, &cause);
    assert_non_null(data);
    struct pb_decoder *d = pb_decoder_new(NULL);
    size_t off = 0, count = 0;
    srand(seed);
    while (off < len) {
        size_t piece = 1 + (size_t)rand() % 97;
        if (piece > len - off)
            piece = len - off;
        assert_int_equal(pb_decoder_feed(d, data + off, piece, &cause), 0);
        off += piece;
        struct pb_value *v;
        int rc;
        while ((rc = pb_decoder_next(d, &v, &cause)) == 1) {
            count++;
            pb_value_free(v);
        }
        assert_int_equal(rc, 0);
    }
    pb_decoder_free(d);
    free(data);
    free(cause);
    return count;
}

static size_t transcript_count(const char *session, const char *dir)
{
    json_t *doc = load_json("fixtures/pb/transcript.json");
    size_t i, n = 0;
    json_t *m;
    json_array_foreach(json_object_get(json_object_get(doc, session), "messages"), i, m)
    {
        n += strcmp(json_string_value(json_object_get(m, "dir")), dir) == 0;
    }
    json_decref(doc);
    return n;
}

static void test_streams(void **state)
{
    (void)state;
    static const struct {
        const char *session, *m2w, *w2m;
    } files[] = {
        {"session1-build", "fixtures/pb/transcript-master-to-worker.bin",
         "fixtures/pb/transcript-worker-to-master.bin"},
        {"session2-badlogin", "fixtures/pb/captures/session2-badlogin-master-to-worker.bin",
         "fixtures/pb/captures/session2-badlogin-worker-to-master.bin"},
        {"session3-interrupt", "fixtures/pb/captures/session3-interrupt-master-to-worker.bin",
         "fixtures/pb/captures/session3-interrupt-worker-to-master.bin"},
        {"session4-worker-shutdown",
         "fixtures/pb/captures/session4-worker-shutdown-master-to-worker.bin",
         "fixtures/pb/captures/session4-worker-shutdown-worker-to-master.bin"},
    };
    for (size_t i = 0; i < UTIL_NELEM(files); i++) {
        for (unsigned seed = 1; seed <= 3; seed++) {
            assert_int_equal(count_stream(files[i].m2w, seed),
                             transcript_count(files[i].session, "m2w"));
            assert_int_equal(count_stream(files[i].w2m, seed),
                             transcript_count(files[i].session, "w2m"));
        }
    }
}

/* Feeds raw bytes; returns the decoder's verdict and its message in *cause. */
static int decode_raw(const void *data, size_t len, char **cause)
{
    struct pb_decoder *d = pb_decoder_new(NULL);
    struct pb_value *v = NULL;
    int rc = pb_decoder_feed(d, data, len, cause);
    if (rc == 0)
        rc = pb_decoder_next(d, &v, cause);
    pb_value_free(v);
    pb_decoder_free(d);
    return rc;
}

static void expect_error(const void *data, size_t len, const char *words)
{
    char *cause = NULL;
    assert_int_equal(decode_raw(data, len, &cause), -1);
    if (strstr(cause, words) == NULL)
        fail_msg("cause '%s' does not say '%s'", cause, words);
    free(cause);
}

static void test_banana_limits(void **state)
{
    (void)state;
    unsigned char big[80];
    memset(big, 0x01, 65);
    big[65] = 0x82;
    expect_error(big, 66, "64 bytes of header");
    expect_error(big, 65, "64 bytes of header");    /* caught before the type byte arrives */
    unsigned char str[] = {0x01, 0x00, 0x28, 0x82}; /* 655361 */
    expect_error(str, sizeof str, "string longer");
    unsigned char list[] = {0x01, 0x00, 0x28, 0x80};
    expect_error(list, sizeof list, "list longer");
    unsigned char bad_type[] = {0x01, 0x88};
    expect_error(bad_type, sizeof bad_type, "invalid type byte");
    unsigned char bad_vocab[] = {0x20, 0x87};
    expect_error(bad_vocab, sizeof bad_vocab, "unknown vocabulary");
    unsigned char deep[2 * (PB_MAX_DEPTH + 1)];
    for (int i = 0; i < PB_MAX_DEPTH + 1; i++)
        deep[2 * i] = 0x01, deep[2 * i + 1] = 0x80;
    expect_error(deep, sizeof deep, "nested too deeply");
    /* incomplete input is not an error: the decoder waits */
    unsigned char partial[] = {0x03, 0x80, 0x05, 0x82, 'h', 'e'};
    char *cause = NULL;
    assert_int_equal(decode_raw(partial, sizeof partial, &cause), 0);
    unsigned char partial_float[] = {0x84, 0x3f, 0xf8};
    assert_int_equal(decode_raw(partial_float, sizeof partial_float, &cause), 0);
    assert_null(cause);
}

static void test_feed_bound(void **state)
{
    (void)state;
    struct pb_decoder *d = pb_decoder_new(NULL);
    char *cause = NULL;
    char *chunk = xcalloc(1, 1 << 20);
    chunk[0] = 0x7f; /* header bytes only: never a complete token */
    int rc = 0;
    for (int i = 0; i < 16 && rc == 0; i++)
        rc = pb_decoder_feed(d, chunk, 1 << 20, &cause);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(cause, "pending"));
    free(cause);
    free(chunk);
    pb_decoder_free(d);
}

static void expect_unjelly_error(const char *hex, const char *words)
{
    struct pb_value *tree = decode_one(hex), *v = NULL;
    char *cause = NULL;
    assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), -1);
    if (strstr(cause, words) == NULL)
        fail_msg("cause '%s' does not say '%s'", cause, words);
    free(cause);
    pb_value_free(tree);
}

static void test_jelly_refusals(void **state)
{
    (void)state;
    /* ["unicode", b"\xff"] */
    expect_unjelly_error("02800782756e69636f6465"
                         "0182ff",
                         "UTF-8");
    /* ["module", b"os"] */
    expect_unjelly_error("02800987"
                         "02826f73",
                         "refused type 'module'");
    /* ["instance", ...] */
    expect_unjelly_error("02800787"
                         "0181",
                         "refused");
    /* ["reference", 1, ["list", ["dereference", 1]]]: a cycle */
    expect_unjelly_error("03800487"
                         "0181"
                         "02800887"
                         "02800387"
                         "0181",
                         "cyclic");
    /* a list without a tag */
    expect_unjelly_error("01800181", "without a type tag");
}

/* ["unicode", TEXT] as a banana tree. */
static struct pb_value *unicode_tree(const void *text, size_t len)
{
    struct pb_value *t = pb_append(pb_list(), pb_bytes("unicode", 7));
    return pb_append(t, pb_bytes(text, len));
}

/* Jellied text is strict UTF-8 wherever the bad byte falls, ASCII runs read a word at a
   time or not; valid text comes through whole. */
static void test_jelly_unicode(void **state)
{
    (void)state;
    char text[100];
    for (size_t at = 0; at < 40; at++) {
        memset(text, 'x', sizeof text);
        memcpy(text + at, "\xc3\xa9\xf0\x9f\x98\x80", 6);
        struct pb_value *tree = unicode_tree(text, sizeof text), *v = NULL;
        char *cause = NULL;
        assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), 0);
        assert_int_equal(v->kind, PB_TEXT);
        assert_int_equal(v->u.s.len, sizeof text);
        assert_memory_equal(v->u.s.data, text, sizeof text);
        pb_value_free(v);
        pb_value_free(tree);
        static const char *const bad[] = {"\xff", "\x80", "\xc3(", "\xed\xa0\x80", "\xc0\xaf"};
        for (size_t b = 0; b < UTIL_NELEM(bad); b++) {
            memset(text, 'x', sizeof text);
            memcpy(text + at, bad[b], strlen(bad[b]));
            tree = unicode_tree(text, sizeof text);
            v = NULL;
            assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), -1);
            assert_non_null(strstr(cause, "UTF-8"));
            free(cause);
            cause = NULL;
            pb_value_free(tree);
        }
        /* a character cut by the string's end */
        memcpy(text + at, "\xe2\x82\xac", 3);
        tree = unicode_tree(text, at + 2);
        assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), -1);
        free(cause);
        pb_value_free(tree);
    }
}

/* Nested references that double at each level must hit the node bound, not memory. */
static void test_dereference_expansion(void **state)
{
    (void)state;
    struct pb_value *inner = pb_append(pb_list(), pb_bytes("list", 4));
    pb_append(inner, pb_int(1));
    struct pb_value *tree = NULL;
    for (int id = 1; id <= 40; id++) {
        /* ["list", ["reference", id, prev], ["dereference", id]] */
        struct pb_value *ref = pb_append(pb_list(), pb_bytes("reference", 9));
        pb_append(pb_append(ref, pb_int(id)), tree != NULL ? tree : inner);
        struct pb_value *deref = pb_append(pb_list(), pb_bytes("dereference", 11));
        pb_append(deref, pb_int(id));
        tree = pb_append(pb_append(pb_append(pb_list(), pb_bytes("list", 4)), ref), deref);
    }
    struct pb_value *v = NULL;
    char *cause = NULL;
    assert_int_equal(pb_unjelly(tree, PB_MAX_NODES, &v, &cause), -1);
    assert_non_null(strstr(cause, "too many"));
    free(cause);
    pb_value_free(tree);
}

static void test_failure(void **state)
{
    (void)state;
    static const char *const parents[] = {PB_ERR_UNAUTHORIZED, "twisted.cred.error.LoginFailed",
                                          NULL};
    struct pb_value *f = pb_failure_new(PB_ERR_UNAUTHORIZED, "", parents);
    assert_true(pb_failure_is(f, PB_ERR_UNAUTHORIZED));
    assert_true(pb_failure_is(f, "twisted.cred.error.LoginFailed"));
    assert_false(pb_failure_is(f, PB_ERR_NOSUCHMETHOD));
    /* Twisted's key order, as in the recorded UnauthorizedLogin error */
    const struct pb_value *st = f->u.copy.state;
    static const char *const keys[] = {
        "count", "type",    "value",   "captureVars",      "frames",   "stack",
        "tb",    "parents", "pickled", "unsafeTracebacks", "traceback"};
    assert_int_equal(st->u.list.n, 2 * UTIL_NELEM(keys));
    for (size_t i = 0; i < UTIL_NELEM(keys); i++)
        assert_string_equal(pb_str(st->u.list.items[2 * i]), keys[i]);
    assert_int_equal(pb_dict_get(st, "type")->kind, PB_BYTES);
    char *d = pb_failure_describe(f);
    assert_string_equal(d, PB_ERR_UNAUTHORIZED ": ");
    free(d);
    pb_value_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),       cmocka_unit_test(test_jelly_values),
        cmocka_unit_test(test_transcripts),   cmocka_unit_test(test_transcript_messages_unjelly),
        cmocka_unit_test(test_streams),       cmocka_unit_test(test_banana_limits),
        cmocka_unit_test(test_feed_bound),    cmocka_unit_test(test_jelly_refusals),
        cmocka_unit_test(test_jelly_unicode), cmocka_unit_test(test_dereference_expansion),
        cmocka_unit_test(test_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
