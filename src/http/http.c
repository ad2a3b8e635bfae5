/*
 * libcurl's multi socket interface on a libuv loop: curl says which sockets
 * to watch (one uv_poll each) and when to wake it (one uv_timer); each
 * finished transfer calls back with its status and body.
 *
 * SMTP is the exception.  libcurl (7.88) ends a mail's upload by waiting, in
 * a blocking poll, for the relay's reply to the message's end: on the loop's
 * multi handle, every mail held the whole loop (the engine's, for reporters)
 * as long as its relay took to answer, up to the request's timeout.  So mails
 * go through a multi handle of their own, run by the mailer's thread (one per
 * client, made with its first mail); what finishes there comes back to the
 * loop through a uv_async and is called back there like any request.  A mail
 * handed over with an `expand` (the outbox's, read from its file) is made there too.
 */
#include "http/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/util.h"

struct mailer;

struct http {
    uv_loop_t *loop;
    struct mailer *mailer; /* SMTP's thread, from the first mail on */
    uv_async_t mail_async; /* its mails that finished */
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
    http_expand expand;       /* SMTP: what makes the message of the payload, or NULL */
    size_t sent, len;         /* SMTP: bytes of the payload read by libcurl, and in all */
    struct curl_slist *rcpts; /* SMTP: the recipients */
    bool smtp;
    CURLcode code; /* SMTP: how it ended, and the server's last reply code, on the */
    long status;   /* mailer's thread */
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

static void transfer_destroy(struct transfer *t)
{
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    curl_slist_free_all(t->rcpts);
    buf_free(&t->body);
    buf_free(&t->head);
    free(t->payload);
    free(t);
}

/* Takes the transfer out of the loop's multi handle and frees it. */
static void unlink_transfer(struct transfer *t);

static void transfer_free(struct http *h, struct transfer *t)
{
    unlink_transfer(t);
    curl_multi_remove_handle(h->multi, t->easy);
    transfer_destroy(t);
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

/* Calls the transfer back with how it ended. */
static void answer(struct transfer *t, CURLcode code, long status)
{
    struct http_response r = {.status = status};
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
}

/* The transfer of a multi handle's message that it is done, or NULL. */
static struct transfer *done_one(CURLM *multi, CURLcode *code, long *status)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        *code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, status);
        return t;
    }
    return NULL;
}

static void finished(struct http *h)
{
    struct transfer *t;
    CURLcode code;
    long status;
    while ((t = done_one(h->multi, &code, &status)) != NULL) {
        answer(t, code, status);
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

/* In the list at *head (the loop's transfers, or the mailer's thread's). */
static void link_transfer(struct transfer **head, struct transfer *t)
{
    t->next = *head;
    t->prev = head;
    if (*head != NULL)
        (*head)->prev = &t->next;
    *head = t;
}

static void unlink_transfer(struct transfer *t)
{
    *t->prev = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
}

int http_request(struct http *h, const char *method, const char *url, const char *const *headers,
                 const char *body, http_cb cb, void *arg, char **cause)
{
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return util_cause(cause, "http: cannot make a request");
    struct transfer *t = transfer_new(h, easy, cb, arg);
    link_transfer(&h->transfers, t);
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

/* ------------------------------------------------------------ SMTP's thread */

/* Shared by the loop and the mailer's thread; freed by whichever lets go last. */
struct mailer {
    pthread_mutex_t lock;
    CURLM *multi;                         /* the thread's */
    struct transfer *queue, **queue_tail; /* handed over, not yet in the multi handle */
    struct transfer *done;                /* finished, for the loop (newest first) */
    uv_async_t *async;                    /* the loop's; NULL once it let go */
    int refs;
};

static void mailer_unref(struct mailer *m)
{
    pthread_mutex_lock(&m->lock);
    bool last = --m->refs == 0;
    pthread_mutex_unlock(&m->lock);
    if (!last)
        return;
    curl_multi_cleanup(m->multi);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Frees the transfers of a list linked by `next`, calling nothing back. */
static void drop_all(struct transfer *t)
{
    while (t != NULL) {
        struct transfer *next = t->next;
        transfer_destroy(t);
        t = next;
    }
}

/* A transfer that ended goes back to the loop (or, when it let go, is dropped). */
static void hand_back(struct mailer *m, struct transfer *t, CURLcode code, long status)
{
    t->code = code;
    t->status = status;
    pthread_mutex_lock(&m->lock);
    if (m->async != NULL) {
        t->next = m->done;
        m->done = t;
        uv_async_send(m->async);
        t = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    if (t != NULL)
        transfer_destroy(t);
}

static void mailer_finished(struct mailer *m)
{
    struct transfer *t;
    CURLcode code;
    long status;
    while ((t = done_one(m->multi, &code, &status)) != NULL) {
        curl_multi_remove_handle(m->multi, t->easy);
        unlink_transfer(t);
        hand_back(m, t, code, status);
    }
}

/* The message of a transfer given with `expand`, made here rather than on the loop; false
   (the transfer's error said) when it cannot be. */
static bool expanded(struct transfer *t)
{
    if (t->expand == NULL)
        return true;
    char *cause = NULL, *message = t->expand(t->payload, &cause);
    if (message == NULL) {
        snprintf(t->error, sizeof t->error, "%s", cause != NULL ? cause : "no message");
        free(cause);
        return false;
    }
    free(t->payload);
    t->payload = message;
    t->len = strlen(message);
    return true;
}

static void *mailer_main(void *arg)
{
    struct mailer *m = arg;
    struct transfer *running = NULL;
    for (;;) {
        pthread_mutex_lock(&m->lock);
        bool on = m->async != NULL;
        struct transfer *add = m->queue;
        m->queue = NULL;
        m->queue_tail = &m->queue;
        pthread_mutex_unlock(&m->lock);
        if (!on) {
            drop_all(add);
            break;
        }
        while (add != NULL) {
            struct transfer *t = add;
            add = t->next;
            if (!expanded(t)) {
                hand_back(m, t, CURLE_READ_ERROR, 0);
                continue;
            }
            link_transfer(&running, t);
            curl_multi_add_handle(m->multi, t->easy);
        }
        int n;
        curl_multi_perform(m->multi, &n);
        mailer_finished(m);
        curl_multi_poll(m->multi, NULL, 0, 1000, NULL);
    }
    while (running != NULL) {
        struct transfer *t = running;
        unlink_transfer(t);
        curl_multi_remove_handle(m->multi, t->easy);
        transfer_destroy(t);
    }
    mailer_unref(m);
    return NULL;
}

/* On the loop: the mails that finished, called back oldest first. */
static void mailer_done_cb(uv_async_t *a)
{
    struct http *h = a->data;
    struct mailer *m = h->mailer;
    pthread_mutex_lock(&m->lock);
    struct transfer *t = m->done, *oldest = NULL;
    m->done = NULL;
    pthread_mutex_unlock(&m->lock);
    while (t != NULL) { /* reversed */
        struct transfer *next = t->next;
        t->next = oldest;
        oldest = t;
        t = next;
    }
    while (oldest != NULL) {
        t = oldest;
        oldest = t->next;
        answer(t, t->code, t->status);
        transfer_destroy(t);
    }
}

static int mailer_start(struct http *h, char **cause)
{
    struct mailer *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->multi = curl_multi_init();
    m->queue_tail = &m->queue;
    m->async = &h->mail_async;
    m->refs = 2;
    pthread_t thread;
    int err = pthread_create(&thread, NULL, mailer_main, m);
    if (err != 0) {
        curl_multi_cleanup(m->multi);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return util_cause(cause, "smtp: no thread for mails: %s", strerror(err));
    }
    pthread_setname_np(thread, "bbm-mailer");
    pthread_detach(thread); /* it ends when the loop lets go, once its turn is over */
    uv_async_init(h->loop, &h->mail_async, mailer_done_cb);
    h->mail_async.data = h;
    h->handles++;
    h->mailer = m;
    return 0;
}

/* Hands the transfer to the mailer's thread; -1 with *cause, the transfer freed. */
static int mailer_submit(struct http *h, struct transfer *t, char **cause)
{
    if (h->mailer == NULL && mailer_start(h, cause) < 0) {
        transfer_destroy(t);
        return -1;
    }
    struct mailer *m = h->mailer;
    pthread_mutex_lock(&m->lock);
    t->next = NULL; /* in the order they came */
    *m->queue_tail = t;
    m->queue_tail = &t->next;
    pthread_mutex_unlock(&m->lock);
    curl_multi_wakeup(m->multi);
    return 0;
}

/* The loop lets go: what is queued or finished is dropped, the thread ends after its turn. */
static void mailer_stop(struct http *h)
{
    struct mailer *m = h->mailer;
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    m->async = NULL;
    struct transfer *done = m->done;
    m->done = NULL;
    pthread_mutex_unlock(&m->lock);
    drop_all(done);
    curl_multi_wakeup(m->multi);
    mailer_unref(m);
    h->mailer = NULL;
    uv_close((uv_handle_t *)&h->mail_async, handle_closed);
}

static size_t read_cb(char *out, size_t size, size_t n, void *userp)
{
    struct transfer *t = userp;
    size_t left = t->len - t->sent, take = size * n < left ? size * n : left;
    memcpy(out, t->payload + t->sent, take);
    t->sent += take;
    return take;
}

int http_smtp(struct http *h, const char *url, bool starttls, const char *user,
              const char *password, const char *from, const char *const *rcpts, const char *message,
              http_expand expand, http_cb cb, void *arg, char **cause)
{
    CURL *easy = curl_easy_init();
    if (easy == NULL)
        return util_cause(cause, "smtp: cannot make a request");
    struct transfer *t = transfer_new(h, easy, cb, arg);
    t->smtp = true;
    t->len = strlen(message);
    t->payload = xstrndup(message, t->len);
    t->expand = expand;
    for (size_t i = 0; rcpts[i] != NULL; i++)
        t->rcpts = curl_slist_append(t->rcpts, rcpts[i]);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, t->rcpts);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    /* libcurl escapes each piece of a mail's upload into a scratch buffer twice the piece's
       size, made and freed again for every piece that needs no escaping (a base64 text never
       does).  At 2 x 64 KiB the scratch was past the 128 KiB mmap threshold the master had then
       (master.c), so each piece took fresh pages: a third of the mailer's page faults.  At
       2 x 32 KiB it stays below any threshold glibc uses, and comes back. */
    curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 32L * 1024);
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
    return mailer_submit(h, t, cause);
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
    mailer_stop(h);
    h->closing = true;
    curl_multi_cleanup(h->multi); /* closes the cached connections: their polls go */
    h->multi = NULL;
    uv_close((uv_handle_t *)&h->timer, handle_closed);
}
