/*
 * gzip content coding for answers, for clients whose Accept-Encoding takes it
 * (stream.c decides).  A whole answer is compressed in one call; a streamed one
 * through one deflate stream fed piece by piece, so that what it holds is the
 * stream's state (WWW_GZIP_STATE) and the piece, never the whole answer.  The
 * fastest level: on a master's shared processors a raw log must still go out
 * at hundreds of MB/s, and level 1 already takes log text and JSON to a fifth
 * or less of their size (nginx's default for the same reason).
 */
#include "www/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define LEVEL 1
#define WINDOW_BITS (15 + 16) /* 32 KiB window, gzip header and trailer */
#define MEM_LEVEL 8

struct www_deflate {
    z_stream z;
};

static void start(z_stream *z)
{
    *z = (z_stream){0};
    if (deflateInit2(z, LEVEL, Z_DEFLATED, WINDOW_BITS, MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
        fprintf(stderr, "bbmaster: zlib: out of memory\n");
        abort();
    }
}

/* Runs deflate over the input set in `z` until it is all taken (and, with Z_FINISH, the
   trailer written), appending to `out`. */
static void run(z_stream *z, int flush, struct buf *out)
{
    unsigned char tmp[16384];
    int rc;
    do {
        z->next_out = tmp;
        z->avail_out = sizeof tmp;
        rc = deflate(z, flush);
        buf_add(out, tmp, sizeof tmp - z->avail_out);
    } while (flush == Z_FINISH ? rc != Z_STREAM_END : z->avail_out == 0);
}

char *www_gzip(const char *text, size_t len, size_t *out_len)
{
    z_stream z;
    start(&z);
    struct buf out;
    buf_init(&out, 0);
    z.next_in = (unsigned char *)text;
    z.avail_in = (uInt)len;
    run(&z, Z_FINISH, &out);
    deflateEnd(&z);
    *out_len = out.len;
    return buf_take(&out);
}

struct www_deflate *www_deflate_new(void)
{
    struct www_deflate *d = xmalloc(sizeof *d);
    start(&d->z);
    return d;
}

void www_deflate(struct www_deflate *d, const char *in, size_t len, bool end, struct buf *out)
{
    d->z.next_in = (unsigned char *)in;
    d->z.avail_in = (uInt)len;
    run(&d->z, end ? Z_FINISH : Z_NO_FLUSH, out);
}

void www_deflate_free(struct www_deflate *d)
{
    if (d == NULL)
        return;
    deflateEnd(&d->z);
    free(d);
}
