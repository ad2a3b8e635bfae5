/*
 * http: an HTTP client on a libuv loop (libcurl's multi interface driven by
 * uv_poll and a uv_timer), for the calls the master makes to other services
 * (GitHub's API for pull-request testing, reporters).  Answers come back
 * through callbacks on the loop's thread; mails are sent from a thread of the
 * client's own (libcurl's SMTP waits in a blocking poll, http.c).
 */
#ifndef BBM_HTTP_H
#define BBM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* The most of a response body kept; a longer one fails the request. */
#define HTTP_BODY_MAX (8 * 1024 * 1024)
/* Seconds a request may take from start to end. */
#define HTTP_TIMEOUT 30
/* The most of a response's header lines kept; longer ones fail the request. */
#define HTTP_HEAD_MAX (64 * 1024)

struct http;

struct http_response {
    long status;      /* the HTTP status, 0 when no response came */
    const char *body; /* NUL-terminated */
    size_t len;
    const char *error;   /* why there is no response, or NULL */
    const char *headers; /* the response's header lines ("Name: value\r\n"...) */
    long retry_after;    /* the Retry-After header in seconds (a date made relative), or -1 */
};

/* Called once per request with its outcome (not after http_free). */
typedef void (*http_cb)(void *arg, const struct http_response *r);

struct http *http_new(uv_loop_t *loop);
/*
 * Starts `method` ("GET", "POST", "DELETE"...) on `url` with `headers`
 * ("Name: value", NULL-terminated; may be NULL) and `body` (NULL for none).
 * Returns 0, or -1 with *cause; `cb` follows later.
 */
int http_request(struct http *h, const char *method, const char *url, const char *const *headers,
                 const char *body, http_cb cb, void *arg, char **cause);
/*
 * Sends `message` (a whole RFC 5322 message, CRLF line ends) by SMTP to `url`
 * ("smtp://host:port" or "smtps://host:port") from `from` to `rcpts` (NULL-terminated),
 * with STARTTLS when the server offers it (required when `starttls`) and the server's
 * certificate not verified, as Buildbot's Twisted sender; AUTH when `user` is not NULL.  The
 * response's status is the server's last SMTP reply code (0 when none came: no
 * connection, a timeout).  Returns 0, or -1 with *cause; `cb` follows later.  With
 * `expand`, `message` is what it turns into the message sent, on the mailer's thread (the
 * path of an outbox's mail file); when it cannot, the response is that error, with no
 * status.
 */
typedef char *(*http_expand)(const char *text, char **cause);
int http_smtp(struct http *h, const char *url, bool starttls, const char *user,
              const char *password, const char *from, const char *const *rcpts, const char *message,
              http_expand expand, http_cb cb, void *arg, char **cause);
/* This client's requests take at most `timeout` seconds and bodies of `body_max` bytes
   (HTTP_TIMEOUT and HTTP_BODY_MAX by default). */
void http_set_limits(struct http *h, long timeout, size_t body_max);
/* The value of the response's (last) header `name` (any case), trimmed (malloc'd), or NULL. */
char *http_header(const struct http_response *r, const char *name);
/* Drops every request in flight (their callbacks are not called); freed once its handles close. */
void http_free(struct http *h);

#endif
