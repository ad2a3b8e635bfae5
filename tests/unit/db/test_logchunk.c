/*
 * Unit tests for log chunks (db/logchunk.c): every `compressed` code Buildbot
 * writes decodes (inputs made with the compression libraries themselves and
 * the chunks of a database Buildbot wrote), what bbmaster writes decodes back,
 * and corrupt, unknown or oversized chunks are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <brotli/encode.h>
#include <bzlib.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "db/db.h"

#define FIXTURE BBM_SHARED_DIR "/fixtures/dataapi/state-4.3-after-builds.sqlite"

static char *sample_text(size_t *len)
{
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 2000; i++)
        buf_printf(&b, "ohello line %d of a compile log\n", i);
    *len = b.len;
    return buf_take(&b);
}

static void expect_decoded(int codec, const void *in, size_t len, const char *want, size_t want_len)
{
    struct buf out;
    buf_init(&out, 0);
    char *cause = NULL;
    if (db_chunk_decode(codec, in, len, &out, &cause) != 0)
        fail_msg("codec %d: %s", codec, cause);
    assert_int_equal(out.len, want_len);
    assert_memory_equal(out.data, want, want_len);
    buf_free(&out);
}

static void test_every_codec_decodes(void **state)
{
    (void)state;
    size_t len;
    char *text = sample_text(&len);
    size_t cap = len + 1024;
    unsigned char *z = malloc(cap + 4);

    expect_decoded(DB_CHUNK_RAW, text, len, text, len);

    uLongf zl = cap;
    assert_int_equal(compress2(z, &zl, (const Bytef *)text, len, 9), Z_OK);
    expect_decoded(DB_CHUNK_ZLIB, z, zl, text, len);

    unsigned bl = (unsigned)cap;
    assert_int_equal(BZ2_bzBuffToBuffCompress((char *)z, &bl, text, (unsigned)len, 9, 0, 0), BZ_OK);
    expect_decoded(DB_CHUNK_BZ2, z, bl, text, len);

    /* python-lz4's block format: the size, 4 bytes little-endian, then the block */
    int ll = LZ4_compress_default(text, (char *)z + 4, (int)len, (int)cap);
    assert_true(ll > 0);
    for (int i = 0; i < 4; i++)
        z[i] = (unsigned char)(len >> (8 * i));
    expect_decoded(DB_CHUNK_LZ4, z, (size_t)ll + 4, text, len);

    size_t sl = ZSTD_compress(z, cap, text, len, 9);
    assert_false(ZSTD_isError(sl));
    expect_decoded(DB_CHUNK_ZSTD, z, sl, text, len);

    size_t brl = cap;
    assert_true(BrotliEncoderCompress(9, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, len,
                                      (const uint8_t *)text, &brl, z));
    expect_decoded(DB_CHUNK_BROTLI, z, brl, text, len);
    free(z);
    free(text);
}

/* `text` encoded by `method` into `enc` (emptied first); the codec it was written with. */
static int encode(const char *text, size_t len, int method, struct buf *enc)
{
    char *cause = NULL;
    buf_reset(enc);
    if (db_chunk_encode(text, len, enc, &method, &cause) != 0)
        fail_msg("method %d: %s", method, cause);
    return method;
}

static void test_written_chunks_read_back(void **state)
{
    (void)state;
    size_t len;
    char *text = sample_text(&len);
    struct buf enc;
    buf_init(&enc, 0);
    assert_int_equal(encode(text, len, DB_CHUNK_ZSTD, &enc), DB_CHUNK_ZSTD);
    assert_true(enc.len < len / 4);
    expect_decoded(DB_CHUNK_ZSTD, enc.data, enc.len, text, len);
    /* too short to gain anything: stored raw */
    assert_int_equal(encode("ox\n", 3, DB_CHUNK_ZSTD, &enc), DB_CHUNK_RAW);
    expect_decoded(DB_CHUNK_RAW, enc.data, enc.len, "ox\n", 3);
    buf_free(&enc);
    free(text);
}

/* logCompressionMethod: each of Buildbot's methods writes its own format, read back. */
static void test_every_method_writes(void **state)
{
    (void)state;
    size_t len;
    char *text = sample_text(&len);
    struct buf enc;
    buf_init(&enc, 0);
    for (int method = DB_CHUNK_RAW; method <= DB_CHUNK_BROTLI; method++) {
        assert_int_equal(encode(text, len, method, &enc), method);
        if (method != DB_CHUNK_RAW)
            assert_true(enc.len < len / 2);
        expect_decoded(method, enc.data, enc.len, text, len);
    }
    /* python-lz4's block: the content's size, little-endian, before the block */
    encode(text, len, DB_CHUNK_LZ4, &enc);
    const unsigned char *h = (const unsigned char *)enc.data;
    assert_int_equal((size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24,
                     len);
    /* zlib's own format, as Python's zlib.compress writes and zlib.decompress reads */
    encode(text, len, DB_CHUNK_ZLIB, &enc);
    assert_int_equal((unsigned char)enc.data[0], 0x78);
    buf_free(&enc);
    free(text);
}

static void expect_refused(int codec, const void *in, size_t len, const char *words)
{
    struct buf out;
    buf_init(&out, 0);
    char *cause = NULL;
    assert_int_equal(db_chunk_decode(codec, in, len, &out, &cause), -1);
    if (strstr(cause, words) == NULL)
        fail_msg("codec %d: \"%s\" lacks \"%s\"", codec, cause, words);
    /* stopped at the bound, whatever the buffer's own: a bomb never grows it much past */
    assert_true(out.cap <= 2 * DB_CHUNK_MAX);
    free(cause);
    buf_free(&out);
}

/* What bbmaster writes is a zstd frame that names its content size, as python-zstandard's
   one-shot decompress (Buildbot's reader) requires, and that libzstd's one-shot API reads. */
static void test_written_chunks_read_by_others(void **state)
{
    (void)state;
    size_t len;
    char *text = sample_text(&len);
    struct buf enc;
    buf_init(&enc, 0);
    for (int round = 0; round < 3; round++) { /* the thread's context, used again */
        assert_int_equal(encode(text, len, DB_CHUNK_ZSTD, &enc), DB_CHUNK_ZSTD);
        assert_int_equal(ZSTD_getFrameContentSize(enc.data, enc.len), len);
        char *plain = malloc(len);
        assert_int_equal(ZSTD_decompress(plain, len, enc.data, enc.len), len);
        assert_memory_equal(plain, text, len);
        free(plain);
    }
    buf_free(&enc);
    free(text);
}

/* The thread's decompression context is reset between chunks: a corrupt or truncated
   chunk, or one made with a window larger than the context keeps, does not spoil the
   next one. */
static void test_decoder_context_survives_bad_chunks(void **state)
{
    (void)state;
    size_t len;
    char *text = sample_text(&len);
    size_t cap = ZSTD_compressBound(len);
    unsigned char *z = malloc(cap);
    size_t sl = ZSTD_compress(z, cap, text, len, 3);
    assert_false(ZSTD_isError(sl));
    expect_decoded(DB_CHUNK_ZSTD, z, sl, text, len);
    expect_refused(DB_CHUNK_ZSTD, z, sl / 2, "zstd");
    expect_decoded(DB_CHUNK_ZSTD, z, sl, text, len);
    unsigned char bad[64];
    memcpy(bad, z, sizeof bad);
    bad[20] ^= 0x55;
    bad[30] ^= 0xaa;
    expect_refused(DB_CHUNK_ZSTD, bad, sizeof bad, "zstd");
    expect_decoded(DB_CHUNK_ZSTD, z, sl, text, len);
    /* a streamed frame with an 8 MiB window and no content size */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 23);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    ZSTD_inBuffer ib = {text, len, 0};
    ZSTD_outBuffer ob = {z, cap, 0};
    assert_int_equal(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end), 0);
    ZSTD_freeCCtx(c);
    expect_decoded(DB_CHUNK_ZSTD, z, ob.pos, text, len);
    sl = ZSTD_compress(z, cap, text, len, 9);
    expect_decoded(DB_CHUNK_ZSTD, z, sl, text, len);
    free(z);
    free(text);
}

/* Threads encode and decode at once, each with its own contexts. */
static void *round_trips(void *arg)
{
    const char *tag = arg;
    struct buf text, enc, out;
    buf_init(&text, 0);
    buf_init(&enc, 0);
    buf_init(&out, 0);
    int rounds = 0;
    for (int i = 0; i < 3000; i++)
        buf_printf(&text, "o%s line %d\n", tag, i);
    for (int round = 0; round < 50; round++) {
        int codec = DB_CHUNK_ZSTD;
        char *cause = NULL;
        buf_reset(&enc);
        buf_reset(&out);
        if (db_chunk_encode(text.data, text.len, &enc, &codec, &cause) != 0 ||
            db_chunk_decode(codec, (const unsigned char *)enc.data, enc.len, &out, &cause) != 0 ||
            out.len != text.len || memcmp(out.data, text.data, text.len) != 0) {
            free(cause);
            break;
        }
        buf_printf(&text, "o%s round %d\n", tag, round);
        rounds++;
    }
    buf_free(&text);
    buf_free(&enc);
    buf_free(&out);
    return rounds == 50 ? arg : NULL;
}

static void test_threads_have_their_own_contexts(void **state)
{
    (void)state;
    static char tags[4][8] = {"alpha", "beta", "gamma", "delta"};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, round_trips, tags[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        assert_int_equal(pthread_join(t[i], &r), 0);
        assert_ptr_equal(r, tags[i]);
    }
}

static void test_bad_chunks_are_refused(void **state)
{
    (void)state;
    const size_t big = 32 * DB_CHUNK_MAX; /* a few kilobytes compressed */
    char *zeros = calloc(1, big);
    size_t cap = ZSTD_compressBound(big);
    unsigned char *z = malloc(cap);
    uLongf zl = cap;
    assert_int_equal(compress2(z, &zl, (const Bytef *)zeros, big, 9), Z_OK);
    expect_refused(DB_CHUNK_ZLIB, z, zl, "past");
    size_t sl = ZSTD_compress(z, cap, zeros, big, 3);
    expect_refused(DB_CHUNK_ZSTD, z, sl, "past");
    size_t bl = cap;
    assert_true(
        BrotliEncoderCompress(1, 22, BROTLI_MODE_GENERIC, big, (const uint8_t *)zeros, &bl, z));
    expect_refused(DB_CHUNK_BROTLI, z, bl, "past");
    expect_refused(DB_CHUNK_ZLIB, "not zlib", 8, "zlib");
    expect_refused(DB_CHUNK_ZSTD, "not zstd", 8, "zstd");
    expect_refused(DB_CHUNK_LZ4, "\xff\xff\xff\x7f", 4, "past");
    expect_refused(DB_CHUNK_LZ4, "\x0a\x00\x00\x00\xff\xff\xff", 7, "lz4");
    expect_refused(9, "x", 1, "unknown");
    free(z);
    free(zeros);
}

/* Every chunk of a database Buildbot 4.3 wrote: as many lines as it says, joined by '\n'
   with no newline after the last. */
static void test_buildbots_chunks(void **state)
{
    (void)state;
    char dir[] = "/tmp/bbm-test-logchunk-XXXXXX", cmd[512], *cause = NULL;
    assert_non_null(mkdtemp(dir));
    /* a copy: opening a WAL database even read-only creates files beside it */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/fixture.sqlite'", FIXTURE, dir);
    assert_int_equal(system(cmd), 0);
    struct db *db = db_open("sqlite:///fixture.sqlite", dir, true, &cause);
    assert_non_null(db);
    struct db_res *r = db_query(
        db, "SELECT first_line, last_line, compressed, content FROM logchunks", NULL, 0, &cause);
    assert_true(db_res_rows(r) > 50);
    struct buf out;
    buf_init(&out, 0);
    for (size_t i = 0; i < db_res_rows(r); i++) {
        size_t len;
        const unsigned char *data = db_res_blob(r, i, 3, &len);
        buf_reset(&out);
        if (db_chunk_decode((int)db_res_int(r, i, 2), data, len, &out, &cause) != 0)
            fail_msg("chunk %zu: %s", i, cause);
        size_t lines = 1;
        for (size_t k = 0; k < out.len; k++)
            lines += out.data[k] == '\n';
        assert_true(out.len > 0 && out.data[out.len - 1] != '\n');
        assert_int_equal(lines, db_res_int(r, i, 1) - db_res_int(r, i, 0) + 1);
    }
    buf_free(&out);
    db_res_free(r);
    db_close(db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_codec_decodes),
        cmocka_unit_test(test_written_chunks_read_back),
        cmocka_unit_test(test_every_method_writes),
        cmocka_unit_test(test_written_chunks_read_by_others),
        cmocka_unit_test(test_decoder_context_survives_bad_chunks),
        cmocka_unit_test(test_threads_have_their_own_contexts),
        cmocka_unit_test(test_bad_chunks_are_refused),
        cmocka_unit_test(test_buildbots_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
