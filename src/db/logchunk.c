/*
 * Buildbot's log chunk codecs (logchunks.compressed): 0 raw, 1 zlib ("gz"),
 * 2 bzip2, 3 python-lz4 block, 4 zstd, 5 brotli.  Every decoder is bounded
 * by DB_CHUNK_MAX, so a hostile or corrupt row cannot blow up memory; new
 * chunks are written the way Buildbot 4.3 writes them: zstd, or raw when
 * compression does not help.
 */
#include "db/db.h"

#include <brotli/decode.h>
#include <bzlib.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

static int too_big(char **cause)
{
    return util_cause(cause, "log chunk decompresses past %d bytes", DB_CHUNK_MAX);
}

static int zlib_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK)
        return util_cause(cause, "zlib: cannot start");
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    unsigned char tmp[16384];
    int rc;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
            break;
        if (buf_add(out, tmp, sizeof tmp - z.avail_out) < 0) {
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
    char tmp[16384];
    int rc;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        rc = BZ2_bzDecompress(&z);
        if (rc != BZ_OK && rc != BZ_STREAM_END)
            break;
        if (buf_add(out, tmp, sizeof tmp - z.avail_out) < 0) {
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
    ZSTD_DStream *z = ZSTD_createDStream();
    ZSTD_initDStream(z);
    ZSTD_inBuffer ib = {in, len, 0};
    char tmp[16384];
    size_t rc = 1;
    int err = 0;
    while (rc != 0 && err == 0) {
        ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
        rc = ZSTD_decompressStream(z, &ob, &ib);
        if (ZSTD_isError(rc))
            err = util_cause(cause, "corrupt zstd log chunk: %s", ZSTD_getErrorName(rc));
        else if (buf_add(out, tmp, ob.pos) < 0)
            err = too_big(cause);
        else if (rc != 0 && ib.pos == ib.size && ob.pos < ob.size)
            err = util_cause(cause, "truncated zstd log chunk");
    }
    ZSTD_freeDStream(z);
    return err;
}

static int brotli_decode(const unsigned char *in, size_t len, struct buf *out, char **cause)
{
    BrotliDecoderState *s = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    size_t avail_in = len;
    const uint8_t *next_in = in;
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
        else if (buf_add(out, tmp, sizeof tmp - avail_out) < 0)
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

int db_chunk_encode(const char *in, size_t len, struct buf *out, int *codec, char **cause)
{
    size_t bound = ZSTD_compressBound(len);
    char *tmp = xmalloc(bound);
    size_t n = ZSTD_compress(tmp, bound, in, len, 9);
    int rc;
    if (ZSTD_isError(n)) {
        rc = util_cause(cause, "zstd: %s", ZSTD_getErrorName(n));
    } else if (n < len) {
        rc = buf_add(out, tmp, n) < 0 ? util_cause(cause, "log chunk too large") : 0;
        *codec = DB_CHUNK_ZSTD;
    } else {
        rc = buf_add(out, in, len) < 0 ? util_cause(cause, "log chunk too large") : 0;
        *codec = DB_CHUNK_RAW;
    }
    free(tmp);
    return rc;
}
