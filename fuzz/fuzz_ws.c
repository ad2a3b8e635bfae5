/*
 * libFuzzer target for the WebSocket frame decoder (www/wsframe.c): the input
 * is what a client sends after the upgrade, taken apart frame by frame as the
 * server's thread takes it, messages reassembled within their bound, and
 * routing keys matched against a topic made of the same bytes.  Checks: a frame
 * never claims more bytes than there are, a payload never passes the bound, and
 * what the server writes back frames again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "www/internal.h"

static void check_reply(const struct www_ws_frame *f)
{
    struct buf out;
    buf_init(&out, 0);
    if (www_ws_frame_put(&out, f->op == WWW_WS_PING ? WWW_WS_PONG : f->op, f->payload, f->len) != 0)
        abort();
    if (out.len < f->len + 2)
        abort();
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    struct www_ws_msg m = {0};
    buf_init(&m.text, WWW_WS_FRAME_MAX);
    size_t at = 0;
    while (at < size) {
        struct www_ws_frame f;
        int code = 0;
        long n = www_ws_frame_parse(copy + at, size - at, &f, &code);
        if (n == 0)
            break;
        if (n < 0) {
            if (code != 1002 && code != 1009)
                abort();
            break;
        }
        if ((size_t)n > size - at || f.len > WWW_WS_FRAME_MAX)
            abort();
        check_reply(&f);
        int rc = www_ws_msg_add(&m, &f, &code);
        if (rc < 0)
            break;
        if (rc == 1 && m.text.len > WWW_WS_FRAME_MAX)
            abort();
        at += (size_t)n;
    }
    /* topics against keys: any bytes, split where the input says */
    char *text = (char *)copy;
    text[size] = '\0';
    char *mid = memchr(text, '\n', size);
    if (mid != NULL) {
        *mid = '\0';
        if (www_topic_ok(text))
            www_topic_match(text, mid + 1);
    }
    buf_free(&m.text);
    free(copy);
    return 0;
}
