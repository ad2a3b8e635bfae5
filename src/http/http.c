/*
 * libcurl's multi socket interface on a libuv loop: curl says which sockets
 * to watch (one uv_poll each) and when to wake it (one uv_timer); each
 * finished transfer calls back with its status and body.
 */
#include "http/http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/util.h"

struct http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int handles; /* open libuv handles: the timer and the polls */
    bool closing;
    long timeout;               /* seconds a request may take */
    size_t body_max;            /* the most of a response body */
    struct transfer *transfers; /* in flight */
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http *h;
};

struct transfer {
    struct transfer *next, **prev;
    CURL *easy;
    struct curl_slist *headers;
    struct buf body;
    struct buf head; /* the last response's header lines */
    char *payload;
    size_t sent;              /* SMTP: bytes of the payload read by libcurl */
    struct curl_slist *rcpts; /* SMTP: the recipients */
    bool smtp;
    http_cb cb;
    void *arg;
    char error[CURL_ERROR_SIZE];
};

static void maybe_free(struct http *h)
{
    if (h->closing && h->handles == 0)
        free(h);
}

static void handle_closed(uv_handle_t *hd)
{
    struct http *h = hd->data;
    if (hd->type == UV_POLL) {
        struct sock *s = hd->data;
        h = s->h;
        free(s);
    }
    h->handles--;
    maybe_free(h);
}

/* Takes the transfer out of the multi handle and frees it. */
static void transfer_free(struct http *h, struct transfer *t)
{
    *t->prev = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    curl_multi_remove_handle(h->multi, t->easy);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    curl_slist_free_all(t->rcpts);
    buf_free(&t->body);
    buf_free(&t->head);
    free(t->payload);
    free(t);
}

/* Retry-After: seconds, or an HTTP date; -1 when absent or unreadable. */
static long retry_after(const struct http_response *r)
{
    char *v = http_header(r, "Retry-After");
    if (v == NULL)
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    time_t at = end != v && *end == '\0' ? 0 : curl_getdate(v, NULL);
    free(v);
    if (at == 0)
        return n >= 0 ? n : -1;
    if (at < 0)
        return -1;
    time_t now = time(NULL);
    return at > now ? (long)(at - now) : 0;
}

static void finished(struct http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        struct transfer *t = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
        struct http_response r = {0};
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
        if (code != CURLE_OK) {
            /* an SMTP refusal keeps its reply code (451, 550...); a failure after a 2xx or
               3xx reply (a timeout in DATA, a dropped connection) is no answer */
            if (!t->smtp || r.status < 400)
                r.status = 0;
            r.error = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
        }
        buf_addc(&t->head, '\0');
        if (t->smtp && r.status >= 400 && t->head.len > 1)
            r.error = t->head.data; /* "451 4.3.0 Try again later" */
        buf_addc(&t->body, '\0');
        r.body = t->body.data != NULL ? t->body.data : "";
        r.len = t->body.len > 0 ? t->body.len - 1 : 0;
        r.headers = t->head.data != NULL ? t->head.data : "";
        r.retry_after = code == CURLE_OK ? retry_after(&r) : -1;
        t->cb(t->arg, &r);
        transfer_free(h, t);
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sock *s = (struct sock *)p;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->h->multi, s->fd, flags, &running);
    finished(s->h);
}

static void timer_cb(uv_timer_t *t)
{
    struct http *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    finished(h);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct http *h = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, handle_closed);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->h = h;
        uv_poll_init_socket(h->loop, &s->poll, fd);
        s->poll.data = s;
        h->handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

static int timeout_cb(CURLM *multi, long ms, void *userp)
{
    (void)multi;
    struct http *h = userp;
    if (ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, timer_cb, (uint64_t)ms, 0);
    return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
    struct transfer *t = userp;
    return buf_add(&t->body, data, size * n) < 0 ? 0 : size * n;
}

/* The header lines of the last response (a redirect's or a 100's are dropped). */
static size_t header_cb(char *data, size_t size, size_t n, void *userp)
{
    struct transfer *t = userp;
    if (size * n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        t->head.len = 0;
    return buf_add(&t->head, data, size * n) < 0 ? 0 : size * n;
}

/* SMTP: libcurl hands over the server's replies line by line; the last one is kept, to
   say why a mail was refused. */
static size_t reply_cb(char *data, size_t size, size_t n, void *userp)
{
    struct transfer *t = userp;
    size_t len = size * n;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    t->head.len = 0;
    buf_add(&t->head, data, len < 200 ? len : 200);
    return size * n;
}

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct http *http_new(uv_loop_t *loop)
{
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, global_init);
    struct http *h = xcalloc(1, sizeof *h);
    h->loop = loop;
    h->multi = curl_multi_init();
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->handles = 1;
    h->timeout = HTTP_TIMEOUT;
    h->body_max = HTTP_BODY_MAX;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timeout_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return h;
}

static struct transfer *transfer_new(struct http *h, CURL *easy, http_cb cb, void *arg)
{
    struct transfer *t = xcalloc(1, sizeof *t);
    t->easy = easy;
    t->next = h->transfers;
    t->prev = &h->transfers;
    if (h->transfers != NULL)
        h->transfers->prev = &t->next;
    h->transfers = t;
    t->cb = cb;
    t->arg = arg;
    buf_init(&t->body, h->body_max);
    buf_init(&t->head, HTTP_HEAD_MAX);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, h->timeout);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    return t;
}

int http_request(struct http *h, const char *method, const char *url, const char *const *headers,
                 const char *body, http_cb cb, void *arg, char **cause)
{
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return util_cause(cause, "http: cannot make a request");
    struct transfer *t = transfer_new(h, easy, cb, arg);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        t->headers = curl_slist_append(t->headers, headers[i]);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body != NULL) {
        t->payload = xstrdup(body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->payload);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(t->payload));
    }
    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        transfer_free(h, t);
        return util_cause(cause, "http: cannot start a request");
    }
    return 0;
}

static size_t read_cb(char *out, size_t size, size_t n, void *userp)
{
    struct transfer *t = userp;
    size_t left = strlen(t->payload + t->sent), take = size * n < left ? size * n : left;
    memcpy(out, t->payload + t->sent, take);
    t->sent += take;
    return take;
}

int http_smtp(struct http *h, const char *url, bool starttls, const char *user,
              const char *password, const char *from, const char *const *rcpts, const char *message,
              http_cb cb, void *arg, char **cause)
{
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return util_cause(cause, "smtp: cannot make a request");
    struct transfer *t = transfer_new(h, easy, cb, arg);
    t->smtp = true;
    t->payload = xstrdup(message);
    for (size_t i = 0; rcpts[i] != NULL; i++)
        t->rcpts = curl_slist_append(t->rcpts, rcpts[i]);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, t->rcpts);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(easy, CURLOPT_READDATA, t);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, reply_cb);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    /* Twisted's ESMTPSender: STARTTLS whenever the server offers it, required with `starttls`,
       and the relay's certificate taken as it is (ClientContextFactory verifies nothing) */
    curl_easy_setopt(easy, CURLOPT_USE_SSL, (long)(starttls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    if (user != NULL) {
        curl_easy_setopt(easy, CURLOPT_USERNAME, user);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, password != NULL ? password : "");
    }
    if (curl_multi_add_handle(h->multi, easy) != CURLM_OK) {
        transfer_free(h, t);
        return util_cause(cause, "smtp: cannot start a request");
    }
    return 0;
}

void http_set_limits(struct http *h, long timeout, size_t body_max)
{
    h->timeout = timeout;
    h->body_max = body_max;
}

char *http_header(const struct http_response *r, const char *name)
{
    size_t n = strlen(name);
    char *found = NULL;
    for (const char *p = r->headers; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            const char *stop = p + len;
            while (v < stop && (*v == ' ' || *v == '\t'))
                v++;
            while (stop > v && (stop[-1] == '\r' || stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
            free(found);
            found = xstrndup(v, (size_t)(stop - v));
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return found;
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    while (h->transfers != NULL)
        transfer_free(h, h->transfers);
    h->closing = true;
    curl_multi_cleanup(h->multi); /* closes the cached connections: their polls go */
    h->multi = NULL;
    uv_close((uv_handle_t *)&h->timer, handle_closed);
}
