/*
 * Buildbot's WebSocket at /ws (master/buildbot/www/ws.py): a client sends
 * {"_id": 1, "cmd": "startConsuming", "path": "builds/N/new"} and gets
 * {"msg":"OK","code":200,"_id":1}, then {"k": KEY, "m": ENTITY} for every
 * message whose routing key matches one of its paths; stopConsuming and ping
 * likewise, with ws.py's replies and error texts word for word.
 *
 * libmicrohttpd answers the upgrade and hands over the socket; from then on one
 * thread serves every socket with poll(2): it reads frames (wsframe.c), answers
 * commands, and copies the feed's messages into each socket's output, which is
 * bounded (WWW_WS_OUT_MAX): a client that does not read stops taking messages,
 * and once the ring has passed its cursor it is closed (1008), as an SSE
 * stream is told to resync.  No one waits for a client.
 */
#include "www/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define IN_MAX (WWW_WS_FRAME_MAX + 14)

struct ws_client {
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    unsigned char in[IN_MAX];
    size_t n_in;
    struct www_ws_msg msg;
    struct buf out;
    size_t sent;
    uint64_t cursor;
    char *paths[WWW_TOPICS_MAX];
    size_t n_paths;
    bool closing; /* a close frame is queued: the socket goes once it is out */
    struct ws_client *next;
};

struct www_ws {
    struct www_feed *f;
    pthread_t thread;
    bool running;
    int wake_fd;
    pthread_mutex_t lock; /* below */
    bool stop;
    struct ws_client *incoming; /* upgraded, not yet taken by the thread */
    size_t n_clients;           /* all of them, for the bound */
};

/* ------------------------------------------------------------ output */

static void send_text(struct ws_client *cl, const char *text, size_t len)
{
    www_ws_frame_put(&cl->out, WWW_WS_TEXT, text, len);
}

static void send_close(struct ws_client *cl, int code)
{
    if (cl->closing)
        return;
    unsigned char b[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    www_ws_frame_put(&cl->out, WWW_WS_CLOSE, b, 2);
    cl->closing = true;
}

/* {"msg": ..., "code": ..., "_id": ...} or {"error": ...}, in ws.py's order. */
static void reply(struct ws_client *cl, const char *field, const char *text, int code,
                  const json_t *id)
{
    json_t *s = json_string(text);
    char *t = json_dumps(s != NULL ? s : json_string("?"), JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    char *i = id != NULL ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII)
                         : xstrdup("null");
    char *msg = xasprintf("{\"%s\":%s,\"code\":%d,\"_id\":%s}", field, t, code, i);
    send_text(cl, msg, strlen(msg));
    free(msg);
    free(i);
    free(t);
    json_decref(s);
}

static void put_cb(void *arg, uint64_t seq, const char *key, const char *entity, size_t len)
{
    (void)seq;
    struct ws_client *cl = arg;
    struct buf b;
    buf_init(&b, 0);
    buf_addstr(&b, "{\"k\":\"");
    www_json_escape(&b, key, strlen(key));
    buf_addstr(&b, "\",\"m\":");
    buf_add(&b, entity, len);
    buf_addc(&b, '}');
    send_text(cl, b.data, b.len);
    buf_free(&b);
}

/* The feed's messages for the client while its output has room. */
static void pull(struct www_ws *ws, struct ws_client *cl)
{
    if (cl->n_paths == 0 || cl->closing || cl->out.len - cl->sent >= WWW_WS_OUT_MAX / 2)
        return;
    struct www_feed *f = ws->f;
    pthread_mutex_lock(&f->lock);
    bool ok = www_feed_take(f, &cl->cursor, cl->paths, cl->n_paths, put_cb, cl,
                            WWW_WS_OUT_MAX / 2 - (cl->out.len - cl->sent));
    pthread_mutex_unlock(&f->lock);
    if (!ok) {
        log_info("www: a WebSocket client fell behind the events; closed");
        send_close(cl, 1008);
    }
}

/* Writes what it can; false when the socket failed. */
static bool flush(struct ws_client *cl)
{
    while (cl->sent < cl->out.len) {
        ssize_t n = send(cl->fd, cl->out.data + cl->sent, cl->out.len - cl->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        cl->sent += (size_t)n;
    }
    buf_reset(&cl->out);
    cl->sent = 0;
    return true;
}

/* ------------------------------------------------------------ commands */

/* Python's str() of a JSON value, for ws.py's messages. */
static char *py_str(const json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (v == NULL || json_is_null(v))
        return xstrdup("None");
    if (json_is_true(v) || json_is_false(v))
        return xstrdup(json_is_true(v) ? "True" : "False");
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* TypeError's text when the frame's other fields are not exactly `params`. */
static char *bad_args(const char *cmd, json_t *rest, const char *const *params, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(rest, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < n; i++)
            known = known || strcmp(key, params[i]) == 0;
        if (!known)
            return xasprintf("WsProtocol.cmd_%s() got an unexpected keyword argument '%s'", cmd,
                             key);
    }
    const char *missing[2];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (json_object_get(rest, params[i]) == NULL)
            missing[m++] = params[i];
    if (m == 0)
        return NULL;
    if (m == 1)
        return xasprintf("WsProtocol.cmd_%s() missing 1 required positional argument: '%s'", cmd,
                         missing[0]);
    return xasprintf("WsProtocol.cmd_%s() missing 2 required positional arguments: '%s' and '%s'",
                     cmd, missing[0], missing[1]);
}

static void consume(struct www_ws *ws, struct ws_client *cl, bool start, json_t *path,
                    const json_t *id)
{
    if (!json_is_string(path)) {
        char *s = py_str(path), *msg = xasprintf("invalid path format '%s'", s);
        reply(cl, "error", msg, 400, id);
        free(msg);
        free(s);
        return;
    }
    const char *p = json_string_value(path);
    size_t i = 0;
    while (i < cl->n_paths && strcmp(cl->paths[i], p) != 0)
        i++;
    if (start && i == cl->n_paths) {
        if (cl->n_paths == WWW_TOPICS_MAX || !www_topic_ok(p)) {
            reply(cl, "error",
                  cl->n_paths == WWW_TOPICS_MAX ? "too many paths consumed (at most 64)"
                                                : "a path is empty or longer than 256 bytes",
                  400, id);
            return;
        }
        if (cl->n_paths == 0) {
            pthread_mutex_lock(&ws->f->lock);
            cl->cursor = ws->f->head;
            pthread_mutex_unlock(&ws->f->lock);
        }
        cl->paths[cl->n_paths++] = xstrdup(p);
    } else if (!start && i == cl->n_paths) {
        char *msg = xasprintf("path was not consumed '%s'", p);
        reply(cl, "error", msg, 400, id);
        free(msg);
        return;
    } else if (!start) {
        free(cl->paths[i]);
        cl->paths[i] = cl->paths[--cl->n_paths];
    }
    reply(cl, "msg", "OK", 200, id);
}

static void command(struct www_ws *ws, struct ws_client *cl, json_t *frame)
{
    json_t *id = json_object_get(frame, "_id");
    if (json_is_null(id))
        id = NULL;
    json_t *type = json_object_get(frame, "type");
    if (id == NULL && (type == NULL || json_is_null(type))) {
        reply(cl, "error", "no '_id' or 'type' in websocket frame", 400, NULL);
        return;
    }
    json_object_del(frame, "type");
    json_t *cmd = json_incref(json_object_get(frame, "cmd"));
    json_object_del(frame, "cmd");
    if (cmd == NULL || json_is_null(cmd)) {
        reply(cl, "error", "no 'cmd' in websocket frame", 400, NULL);
        json_decref(cmd);
        return;
    }
    char *name = py_str(cmd);
    static const char *const with_path[] = {"path", "_id"}, *const only_id[] = {"_id"};
    bool ping = strcmp(name, "ping") == 0, start = strcmp(name, "startConsuming") == 0;
    bool stop = strcmp(name, "stopConsuming") == 0;
    char *err = NULL;
    if (!json_is_string(cmd) || !(ping || start || stop)) {
        err = xasprintf("no such command type '%s'", name);
        reply(cl, "error", err, 404, id);
    } else if ((err = bad_args(name, frame, ping ? only_id : with_path, ping ? 1 : 2)) != NULL) {
        char *msg = xasprintf("Invalid method argument '%s'", err);
        reply(cl, "error", msg, 400, id);
        free(msg);
    } else if (ping) {
        reply(cl, "msg", "pong", 200, id);
    } else {
        consume(ws, cl, start, json_object_get(frame, "path"), id);
    }
    free(err);
    free(name);
    json_decref(cmd);
}

static void message(struct www_ws *ws, struct ws_client *cl)
{
    json_error_t e;
    json_t *frame = json_loadb(cl->msg.text.data, cl->msg.text.len, 0, &e);
    if (!json_is_object(frame)) /* ws.py fails on it, and the connection with it */
        send_close(cl, 1007);
    else
        command(ws, cl, frame);
    json_decref(frame);
}

/* ------------------------------------------------------------ input */

static void frames(struct www_ws *ws, struct ws_client *cl)
{
    size_t at = 0;
    while (!cl->closing) {
        struct www_ws_frame fr;
        int code = 0;
        long n = www_ws_frame_parse(cl->in + at, cl->n_in - at, &fr, &code);
        if (n == 0)
            break;
        if (n < 0 || www_ws_msg_add(&cl->msg, &fr, &code) < 0) {
            send_close(cl, code);
            break;
        }
        at += (size_t)n;
        if (fr.op == WWW_WS_PING)
            www_ws_frame_put(&cl->out, WWW_WS_PONG, fr.payload, fr.len);
        else if (fr.op == WWW_WS_CLOSE)
            send_close(cl, fr.len >= 2 ? (fr.payload[0] << 8 | fr.payload[1]) : 1000);
        else if (!(fr.op & 0x8) && fr.fin)
            message(ws, cl);
    }
    memmove(cl->in, cl->in + at, cl->n_in - at);
    cl->n_in -= at;
}

/* Reads what came; false when the client has gone. */
static bool receive(struct www_ws *ws, struct ws_client *cl)
{
    ssize_t n = recv(cl->fd, cl->in + cl->n_in, IN_MAX - cl->n_in, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return false;
    if (n > 0) {
        cl->n_in += (size_t)n;
        frames(ws, cl);
    }
    return true;
}

/* ------------------------------------------------------------ the thread */

static void client_free(struct www_ws *ws, struct ws_client *cl)
{
    MHD_upgrade_action(cl->urh, MHD_UPGRADE_ACTION_CLOSE);
    for (size_t i = 0; i < cl->n_paths; i++)
        free(cl->paths[i]);
    buf_free(&cl->msg.text);
    buf_free(&cl->out);
    free(cl);
    pthread_mutex_lock(&ws->lock);
    ws->n_clients--;
    pthread_mutex_unlock(&ws->lock);
}

/* One turn: poll, read, answer, pull messages, write.  The list is the thread's own. */
static void turn(struct www_ws *ws, struct ws_client **list, struct pollfd *fds, size_t n)
{
    size_t i = 1;
    for (struct ws_client **p = list; *p != NULL; i++) {
        struct ws_client *cl = *p;
        bool ok = i >= n || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)) || receive(ws, cl);
        if (ok)
            pull(ws, cl);
        ok = ok && flush(cl);
        if (!ok || (cl->closing && cl->sent == cl->out.len)) {
            *p = cl->next;
            client_free(ws, cl);
            continue;
        }
        p = &cl->next;
    }
}

static void *ws_main(void *arg)
{
    struct www_ws *ws = arg;
    struct ws_client *list = NULL;
    struct pollfd *fds = xcalloc(WWW_WS_MAX + 1, sizeof *fds);
    for (;;) {
        pthread_mutex_lock(&ws->lock);
        bool stop = ws->stop;
        while (ws->incoming != NULL) {
            struct ws_client *cl = ws->incoming;
            ws->incoming = cl->next;
            cl->next = list;
            list = cl;
        }
        pthread_mutex_unlock(&ws->lock);
        if (stop)
            break;
        size_t n = 1;
        fds[0] = (struct pollfd){.fd = ws->wake_fd, .events = POLLIN};
        for (struct ws_client *cl = list; cl != NULL && n <= WWW_WS_MAX; cl = cl->next, n++)
            fds[n] = (struct pollfd){
                .fd = cl->fd, .events = (short)(POLLIN | (cl->sent < cl->out.len ? POLLOUT : 0))};
        if (poll(fds, n, 1000) > 0 && (fds[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(ws->wake_fd, &v, sizeof v);
            (void)r;
        }
        turn(ws, &list, fds, n);
    }
    while (list != NULL) {
        struct ws_client *cl = list;
        list = cl->next;
        send_close(cl, 1001); /* going away */
        flush(cl);
        client_free(ws, cl);
    }
    free(fds);
    return NULL;
}

struct www_ws *www_ws_start(struct www_feed *f, char **cause)
{
    struct www_ws *ws = xcalloc(1, sizeof *ws);
    ws->f = f;
    pthread_mutex_init(&ws->lock, NULL);
    ws->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int err = ws->wake_fd < 0 ? errno : pthread_create(&ws->thread, NULL, ws_main, ws);
    if (err != 0) {
        util_cause(cause, "www: cannot start the WebSocket thread: %s", strerror(err));
        www_ws_free(ws);
        return NULL;
    }
    ws->running = true;
    return ws;
}

void www_ws_wake(struct www_ws *ws)
{
    uint64_t one = 1;
    ssize_t r = write(ws->wake_fd, &one, sizeof one);
    (void)r;
}

void www_ws_stop(struct www_ws *ws)
{
    if (ws == NULL || !ws->running)
        return;
    pthread_mutex_lock(&ws->lock);
    ws->stop = true;
    pthread_mutex_unlock(&ws->lock);
    www_ws_wake(ws);
    pthread_join(ws->thread, NULL);
    ws->running = false;
}

void www_ws_free(struct www_ws *ws)
{
    if (ws == NULL)
        return;
    www_ws_stop(ws);
    while (ws->incoming != NULL) { /* upgraded as the thread stopped */
        struct ws_client *cl = ws->incoming;
        ws->incoming = cl->next;
        client_free(ws, cl);
    }
    if (ws->wake_fd >= 0)
        close(ws->wake_fd);
    pthread_mutex_destroy(&ws->lock);
    free(ws);
}

/* ------------------------------------------------------------ the upgrade */

static void upgrade_cb(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)c;
    (void)con_cls;
    struct www_ws *ws = cls;
    struct ws_client *cl = xcalloc(1, sizeof *cl);
    cl->fd = sock;
    cl->urh = urh;
    buf_init(&cl->msg.text, WWW_WS_FRAME_MAX);
    buf_init(&cl->out, 0);
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    size_t n = extra_in_size < IN_MAX ? extra_in_size : IN_MAX;
    memcpy(cl->in, extra_in, n);
    cl->n_in = n;
    pthread_mutex_lock(&ws->lock);
    cl->next = ws->incoming;
    ws->incoming = cl;
    ws->n_clients++; /* counted from here: an upgrade that never came back holds nothing */
    pthread_mutex_unlock(&ws->lock);
    www_ws_wake(ws);
}

static bool header_has(struct MHD_Connection *c, const char *name, const char *token)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v != NULL && strcasestr(v, token) != NULL;
}

/* Buildbot's WsProtocol.onConnect, once the handshake is found good: the session's user
   (a cookie that is not a valid token is refused) must be allowed ('masters', 'get'). */
static bool ws_allowed(struct www *w, struct MHD_Connection *c)
{
    json_t *user = www_session_ws_user(w, c);
    char *denied = user != NULL ? www_user_read_denied(w, user, "masters") : NULL;
    if (user == NULL)
        log_info("www: GET /ws refused: the session cookie is not a valid token");
    bool ok = user != NULL && denied == NULL;
    free(denied);
    json_decref(user);
    return ok;
}

/* autobahn's answer to a ConnectionDeny(403, "Forbidden"): the status line, no body, and
   the connection closed. */
static enum MHD_Result forbidden(struct MHD_Connection *c)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_FORBIDDEN, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result www_ws_open(struct www *w, struct MHD_Connection *c)
{
    struct www_ws *ws = w->feed != NULL ? w->feed->ws : NULL;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    const char *version = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    if (ws == NULL)
        return www_send_error(c, 404, "events are not served by this master");
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade") == NULL)
        return www_send_error(c, 426, "HTTP Upgrade header missing"); /* autobahn's answer */
    if (key == NULL || strlen(key) > 64 || version == NULL || strcmp(version, "13") != 0 ||
        !header_has(c, "Upgrade", "websocket") || !header_has(c, "Connection", "upgrade"))
        return www_send_error(c, 400, "a WebSocket (version 13) upgrade is expected here");
    if (!ws_allowed(w, c))
        return forbidden(c);
    pthread_mutex_lock(&ws->lock);
    bool full = ws->n_clients >= WWW_WS_MAX || ws->stop;
    pthread_mutex_unlock(&ws->lock);
    if (full)
        return www_send_error(c, 503, "too many WebSocket clients; try again later");
    char both[128];
    unsigned char sha[SHA_DIGEST_LENGTH], accept[64];
    snprintf(both, sizeof both, "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)both, strlen(both), sha);
    EVP_EncodeBlock(accept, sha, SHA_DIGEST_LENGTH);
    struct MHD_Response *r = MHD_create_response_for_upgrade(upgrade_cb, ws);
    MHD_add_response_header(r, "Upgrade", "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", (const char *)accept);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}
