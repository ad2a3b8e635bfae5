/*
 * WebSocket frames (RFC 6455 section 5) as a server reads and writes them.  A
 * client's frames must be masked; a payload may be at most WWW_WS_FRAME_MAX
 * bytes, and so may the frames of one fragmented message together; control
 * frames (close, ping, pong) carry at most 125 bytes and are never fragmented.
 * Anything else is a protocol error the caller answers with a close frame.
 * Nothing here allocates but the message being reassembled (bounded), so the
 * decoder can be fed anything (fuzz/fuzz_ws.c).
 */
#include "www/internal.h"

#include <string.h>

long www_ws_frame_parse(unsigned char *data, size_t len, struct www_ws_frame *f, int *close_code)
{
    if (len < 2)
        return 0;
    bool fin = (data[0] & 0x80) != 0, masked = (data[1] & 0x80) != 0;
    int op = data[0] & 0x0f;
    if ((data[0] & 0x70) != 0 || !masked) { /* no extension was agreed; clients mask */
        *close_code = 1002;
        return -1;
    }
    bool control = (op & 0x8) != 0;
    if (!(op == WWW_WS_CONT || op == WWW_WS_TEXT || op == WWW_WS_BINARY || op == WWW_WS_CLOSE ||
          op == WWW_WS_PING || op == WWW_WS_PONG)) {
        *close_code = 1002;
        return -1;
    }
    uint64_t n = data[1] & 0x7f;
    size_t at = 2;
    if (n == 126 || n == 127) {
        size_t bytes = n == 126 ? 2 : 8;
        if (len < at + bytes)
            return 0;
        n = 0;
        for (size_t i = 0; i < bytes; i++)
            n = (n << 8) | data[at + i];
        at += bytes;
    }
    if (control && (n > 125 || !fin)) {
        *close_code = 1002;
        return -1;
    }
    if (n > WWW_WS_FRAME_MAX) {
        *close_code = 1009;
        return -1;
    }
    if (len < at + 4 + n)
        return 0;
    const unsigned char *mask = data + at;
    unsigned char *payload = data + at + 4;
    for (size_t i = 0; i < n; i++)
        payload[i] ^= mask[i % 4];
    *f = (struct www_ws_frame){.fin = fin, .op = op, .len = (size_t)n, .payload = payload};
    return (long)(at + 4 + n);
}

int www_ws_msg_add(struct www_ws_msg *m, const struct www_ws_frame *f, int *close_code)
{
    if (f->op & 0x8) /* control frames go between fragments; the caller answers them */
        return 0;
    if ((f->op == WWW_WS_CONT) != (m->op != 0)) { /* a continuation of nothing, or a new
                                                     message inside another */
        *close_code = 1002;
        return -1;
    }
    if (m->op == 0) {
        buf_reset(&m->text);
        m->op = f->op;
    }
    if (buf_add(&m->text, f->payload, f->len) != 0) {
        *close_code = 1009;
        return -1;
    }
    if (!f->fin)
        return 0;
    m->op = 0;
    return 1;
}

int www_ws_frame_put(struct buf *out, int op, const void *payload, size_t len)
{
    unsigned char head[10];
    size_t n = 0;
    head[n++] = (unsigned char)(0x80 | op);
    if (len < 126) {
        head[n++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        head[n++] = 126;
        head[n++] = (unsigned char)(len >> 8);
        head[n++] = (unsigned char)len;
    } else {
        head[n++] = 127;
        for (int i = 7; i >= 0; i--)
            head[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (out->max != 0 && out->len + n + len > out->max)
        return -1;
    buf_add(out, head, n);
    buf_add(out, payload, len);
    return 0;
}
