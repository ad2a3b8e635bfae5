/*
 * libFuzzer target for everything a worker's bytes go through before the
 * worker session sees them: the banana decoder (fed in pieces whose sizes
 * come from the input), jelly, and the banana encoder on the way back.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pb/pb.h"

static void roundtrip(const struct pb_value *tree)
{
    struct pb_value *v = NULL;
    char *cause = NULL;
    if (pb_unjelly(tree, PB_MAX_NODES, &v, &cause) == 0) {
        struct pb_value *again = pb_jelly(v);
        struct buf out;
        buf_init(&out, 0);
        if (pb_banana_encode(&out, again, true, &cause) != 0)
            abort(); /* whatever unjellies must encode again */
        buf_free(&out);
        pb_value_free(again);
        pb_value_free(v);
    }
    free(cause);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = 1 + data[0] % 64;
    data++, size--;
    struct pb_decoder *d = pb_decoder_new(NULL);
    char *cause = NULL;
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (pb_decoder_feed(d, data + off, n, &cause) != 0)
            break;
        struct pb_value *tree;
        int rc;
        while ((rc = pb_decoder_next(d, &tree, &cause)) == 1) {
            roundtrip(tree);
            pb_value_free(tree);
        }
        if (rc < 0)
            break;
    }
    free(cause);
    pb_decoder_free(d);
    return 0;
}
