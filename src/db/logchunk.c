/*
 * Buildbot's log chunk codecs (logchunks.compressed): 0 raw, 1 zlib ("gz"),
 * 2 bzip2, 3 python-lz4 block, 4 zstd, 5 brotli.  Every decoder stops at
 * DB_CHUNK_MAX, whatever the caller's buffer allows, so a hostile or corrupt
 * row cannot blow up memory.  New chunks are written the way Buildbot 4.3
 * writes them: with the configured logCompressionMethod (zstd by default),
 * or raw when compression does not help.  zstd runs at level 1 with one
 * compression and one decompression context per thread, kept for the
 * thread's life: a fresh context per chunk (at level 9, what ZSTD_compress
 * does) cost more in clearing its tables than the compression itself.  The
 * frame is the same whatever the level, so Buildbot reads these chunks as its
 * own.
 */
#include "db/db.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <bzlib.h>
#include <lz4.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* The levels of new chunks.  zstd: Buildbot's is 9; level 1 compresses a build's log some
   10% less for several times less CPU.  zlib and brotli: Buildbot's are 9 and 11, which
   cost tens of times more than these for a few percent. */
#define ZSTD_LEVEL 1
#define ZLIB_LEVEL 6
#define BROTLI_QUALITY 5

/* Each thread's contexts, freed when the thread ends. */
struct zstd_ctx {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
};

static pthread_key_t zstd_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void zstd_ctx_free(void *p)
{
    struct zstd_ctx *z = p;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z);
}

static void zstd_key_make(void)
{
    if (pthread_key_create(&zstd_key, zstd_ctx_free) != 0)
        abort();
}

/* A decompression context grown past this (a frame asking for a large window, which
   other writers than Buildbot may make) is freed after its chunk rather than kept. */
#define ZSTD_KEEP_MAX (4 * 1024 * 1024)

static struct zstd_ctx *zstd_ctx(void)
{
    pthread_once(&zstd_once, zstd_key_make);
    struct zstd_ctx *z = pthread_getspecific(zstd_key);
    if (z == NULL) {
        z = xcalloc(1, sizeof *z);
        z->c = ZSTD_createCCtx();
        if (z->c == NULL || pthread_setspecific(zstd_key, z) != 0)
            abort();
    }
    if (z->d == NULL && (z->d = ZSTD_createDCtx()) == NULL)
        abort();
    return z;
}

static int too_big(char **cause)
{
    return util_cause(cause, "log chunk decompresses past %d bytes", DB_CHUNK_MAX);
}

/* Appends a decoder's output to the chunk's, which began at `start`: -1 past DB_CHUNK_MAX,
   whatever out's own bound, so that a small hostile chunk stops there. */
static int add_out(struct buf *out, size_t start, const void *data, size_t len)
{
    if (out->len - start + len > DB_CHUNK_MAX)
        return -1;
    return buf_add(out, data, len);
}

static int zlib_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK)
        return util_cause(cause, "zlib: cannot start");
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    size_t start = out->len;
    unsigned char tmp[16384];
    int rc;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
            break;
        if (add_out(out, start, tmp, sizeof tmp - z.avail_out) < 0) {
            inflateEnd(&z);
            return too_big(cause);
        }
    } while (rc != Z_STREAM_END && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : util_cause(cause, "corrupt zlib log chunk");
}

static int bz2_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    bz_stream z = {0};
    if (BZ2_bzDecompressInit(&z, 0, 0) != BZ_OK)
        return util_cause(cause, "bzip2: cannot start");
    z.next_in = (char *)in;
    z.avail_in = (unsigned)len;
    size_t start = out->len;
    char tmp[16384];
    int rc;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        rc = BZ2_bzDecompress(&z);
        if (rc != BZ_OK && rc != BZ_STREAM_END)
            break;
        if (add_out(out, start, tmp, sizeof tmp - z.avail_out) < 0) {
            BZ2_bzDecompressEnd(&z);
            return too_big(cause);
        }
    } while (rc != BZ_STREAM_END && (z.avail_in > 0 || z.avail_out == 0));
    BZ2_bzDecompressEnd(&z);
    return rc == BZ_STREAM_END ? 0 : util_cause(cause, "corrupt bzip2 log chunk");
}

static int lz4_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    if (len < 4)
        return util_cause(cause, "corrupt lz4 log chunk");
    size_t size = (size_t)in[0] | (size_t)in[1] << 8 | (size_t)in[2] << 16 | (size_t)in[3] << 24;
    if (size > DB_CHUNK_MAX || out->len + size > DB_CHUNK_MAX)
        return too_big(cause);
    char *tmp = xmalloc(size + 1);
    int n = LZ4_decompress_safe((const char *)in + 4, tmp, (int)(len - 4), (int)size);
    int rc = n == (int)size ? buf_add(out, tmp, size) : -1;
    free(tmp);
    if (rc < 0)
        return n == (int)size ? too_big(cause) : util_cause(cause, "corrupt lz4 log chunk");
    return 0;
}

static int zstd_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    struct zstd_ctx *ctx = zstd_ctx();
    ZSTD_DCtx *z = ctx->d;
    ZSTD_DCtx_reset(z, ZSTD_reset_session_only);
    ZSTD_inBuffer ib = {in, len, 0};
    size_t start = out->len;
    char tmp[16384];
    size_t rc = 1;
    int err = 0;
    while (rc != 0 && err == 0) {
        ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
        rc = ZSTD_decompressStream(z, &ob, &ib);
        if (ZSTD_isError(rc))
            err = util_cause(cause, "corrupt zstd log chunk: %s", ZSTD_getErrorName(rc));
        else if (add_out(out, start, tmp, ob.pos) < 0)
            err = too_big(cause);
        else if (rc != 0 && ib.pos == ib.size && ob.pos < ob.size)
            err = util_cause(cause, "truncated zstd log chunk");
    }
    if (ZSTD_sizeof_DCtx(z) > ZSTD_KEEP_MAX) {
        ZSTD_freeDCtx(z);
        ctx->d = NULL;
    }
    return err;
}

static int brotli_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    BrotliDecoderState *s = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    size_t avail_in = len;
    const uint8_t *next_in = in;
    size_t start = out->len;
    BrotliDecoderResult r;
    int err = 0;
    do {
        uint8_t tmp[16384];
        size_t avail_out = sizeof tmp;
        uint8_t *next_out = tmp;
        r = BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, NULL);
        if (r == BROTLI_DECODER_RESULT_ERROR ||
            (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT && avail_in == 0))
            err = util_cause(cause, "corrupt brotli log chunk");
        else if (add_out(out, start, tmp, sizeof tmp - avail_out) < 0)
            err = too_big(cause);
    } while (err == 0 && r != BROTLI_DECODER_RESULT_SUCCESS);
    BrotliDecoderDestroyInstance(s);
    return err;
}

int db_chunk_decode(int codec, const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    size_t start = out->len;
    int rc;
    switch (codec) {
    case DB_CHUNK_RAW:
        rc = len > DB_CHUNK_MAX ? too_big(cause) : buf_add(out, in, len) < 0 ? too_big(cause) : 0;
        break;
    case DB_CHUNK_ZLIB:
        rc = zlib_decode(in, len, out, cause);
        break;
    case DB_CHUNK_BZ2:
        rc = bz2_decode(in, len, out, cause);
        break;
    case DB_CHUNK_LZ4:
        rc = lz4_decode(in, len, out, cause);
        break;
    case DB_CHUNK_ZSTD:
        rc = zstd_decode(in, len, out, cause);
        break;
    case DB_CHUNK_BROTLI:
        rc = brotli_decode(in, len, out, cause);
        break;
    default:
        return util_cause(cause, "unknown log chunk compression code %d", codec);
    }
    if (rc == 0 && out->len - start > DB_CHUNK_MAX)
        rc = too_big(cause);
    if (rc < 0)
        out->len = start;
    return rc;
}

/* The compressed form of in[0..len) by `codec` into tmp[0..size): its length, or 0 when it
   failed (the chunk is then stored raw, which is never wrong). */
static size_t compress_as(int codec, const char *in, size_t len, char *tmp, size_t size)
{
    switch (codec) {
    case DB_CHUNK_ZLIB: { /* zlib's format, as Python's zlib.compress */
        uLongf n = size;
        return compress2((Bytef *)tmp, &n, (const Bytef *)in, len, ZLIB_LEVEL) == Z_OK ? n : 0;
    }
    case DB_CHUNK_BZ2: {
        unsigned n = (unsigned)size;
        return BZ2_bzBuffToBuffCompress(tmp, &n, (char *)in, (unsigned)len, 9, 0, 0) == BZ_OK ? n
                                                                                              : 0;
    }
    case DB_CHUNK_LZ4: { /* python-lz4's lz4.block.compress: the size, little-endian, first */
        if (size <= 4)
            return 0;
        for (int i = 0; i < 4; i++)
            tmp[i] = (char)(len >> (8 * i) & 0xff);
        int n = LZ4_compress_default(in, tmp + 4, (int)len, (int)(size - 4));
        return n > 0 ? (size_t)n + 4 : 0;
    }
    case DB_CHUNK_ZSTD: {
        size_t n = ZSTD_compressCCtx(zstd_ctx()->c, tmp, size, in, len, ZSTD_LEVEL);
        return ZSTD_isError(n) ? 0 : n;
    }
    case DB_CHUNK_BROTLI: {
        size_t n = size;
        return BrotliEncoderCompress(BROTLI_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, len,
                                     (const uint8_t *)in, &n, (uint8_t *)tmp)
                   ? n
                   : 0;
    }
    default: /* DB_CHUNK_RAW */
        return 0;
    }
}

int db_chunk_encode(const char *in, size_t len, struct buf *out, int *codec, char **cause)
{
    /* room for what any codec makes of the content at worst (bzip2's 1% and 600 bytes,
       zstd's bound, whose size lets it skip checks); a result is kept when it is smaller */
    size_t room = len + len / 64 + 1024;
    char *tmp = xmalloc(room);
    size_t n = compress_as(*codec, in, len, tmp, room);
    if (n == 0 || n >= len) {
        n = 0;
        *codec = DB_CHUNK_RAW;
    }
    int rc = buf_add(out, n > 0 ? tmp : in, n > 0 ? n : len) < 0
                 ? util_cause(cause, "log chunk too large")
                 : 0;
    free(tmp);
    return rc;
}
