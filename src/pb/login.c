/*
 * login.c: twisted.cred's username/password login over PB (SPEC 4), both ends.
 *
 * Server: the root object answers login(username) with 16 random bytes and a
 * fresh challenger object; the challenger answers respond(response, mind)
 * once, checking response == MD5(MD5(password) || challenge) in constant time
 * against the password the application looks up.  A good response goes to
 * ops->login with the `respond` call, which the application answers with its
 * perspective when it is ready, and the connection's limits are raised from
 * pb_limits_login to pb_limits_session; a bad one, or an unknown user, gets the
 * mind's decref and an UnauthorizedLogin failure carrying nothing else, which
 * is what makes a Python worker retry instead of exiting.
 *
 * Client: pb_broker_login runs the same exchange from the other side, as
 * buildbot-worker does, including the decref of the challenger.
 */
#include "pb/pb_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define MD5_LEN 16

const char *const pb_parents_unauthorized[] = {PB_ERR_UNAUTHORIZED,
                                               "twisted.cred.error.LoginFailed",
                                               "twisted.cred.error.Unauthorized",
                                               "builtins.Exception",
                                               "builtins.BaseException",
                                               "builtins.object",
                                               NULL};

const char *const pb_parents_runtime_error[] = {"builtins.RuntimeError", "builtins.Exception",
                                                "builtins.BaseException", "builtins.object", NULL};

static int md5(const void *data, size_t len, unsigned char out[MD5_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_md5(), NULL) != 1 || n != MD5_LEN)
        return -1;
    return 0;
}

/* MD5(hashed_password || challenge), where hashed_password = MD5(password). */
static int response_for(const unsigned char hashed[MD5_LEN], const void *challenge, size_t len,
                        unsigned char out[MD5_LEN])
{
    unsigned char *buf = xmalloc(MD5_LEN + len);
    memcpy(buf, hashed, MD5_LEN);
    memcpy(buf + MD5_LEN, challenge, len);
    int rc = md5(buf, MD5_LEN + len, out);
    OPENSSL_cleanse(buf, MD5_LEN + len);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ server */

struct challenger {
    char *username;
    unsigned char challenge[PB_CHALLENGE_LEN];
};

static void challenger_free(void *obj)
{
    struct challenger *c = obj;
    free(c->username);
    free(c);
}

static void challenger_call(struct pb_call *call);

static const struct pb_handler challenger_handler = {challenger_call, challenger_free};

/* Checks a response in constant time; an unknown user (NULL password) costs the same. */
static bool response_ok(const char *password, const unsigned char *challenge,
                        const struct pb_value *response)
{
    unsigned char hashed[MD5_LEN], expected[MD5_LEN];
    const char *pw = password != NULL ? password : "";
    bool ok = md5(pw, strlen(pw), hashed) == 0 &&
              response_for(hashed, challenge, PB_CHALLENGE_LEN, expected) == 0;
    ok = ok && password != NULL && pb_is_str(response) && response->u.s.len == MD5_LEN &&
         CRYPTO_memcmp(response->u.s.data, expected, MD5_LEN) == 0;
    OPENSSL_cleanse(hashed, sizeof hashed);
    OPENSSL_cleanse(expected, sizeof expected);
    return ok;
}

/* The mind argument of respond: the peer's object, or None. */
static bool get_mind(const struct pb_value *v, uint32_t *mind)
{
    if (v != NULL && v->kind == PB_REMOTE) {
        *mind = v->u.luid;
        return true;
    }
    *mind = 0;
    return v != NULL && v->kind == PB_NONE;
}

static void refuse(struct pb_call *call)
{
    /* The failure says nothing more than Twisted's: no "unknown user", no "bad password". */
    pb_call_fail_with(call, PB_ERR_UNAUTHORIZED, pb_parents_unauthorized, "%s", "");
}

/* respond(response, mind) on a challenger; usable once. */
static void challenger_call(struct pb_call *call)
{
    if (!util_streq(call->method, "respond")) {
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", call->method);
        return;
    }
    struct challenger c = *(struct challenger *)call->obj;
    ((struct challenger *)call->obj)->username = NULL;
    pb_broker_unexport(call->broker, call->luid);
    call->obj = NULL;

    void *ctx;
    const struct pb_broker_ops *ops = pb_broker_ops(call->broker, &ctx);
    uint32_t mind;
    const char *password = ops->password != NULL ? ops->password(ctx, c.username) : NULL;
    bool ok = response_ok(password, c.challenge, pb_item(call->args, 0));
    if (ok && pb_len(call->args) == 2 && call->kwargs->u.list.n == 0 &&
        get_mind(pb_item(call->args, 1), &mind) && ops->login != NULL) {
        pb_broker_set_limits(call->broker, &pb_limits_session); /* the peer is known now */
        ops->login(ctx, c.username, mind, call);
    } else {
        if (password != NULL && ops->refused != NULL)
            ops->refused(ctx, c.username);
        refuse(call);
    }
    free(c.username);
}

static int make_challenge(struct pb_broker *b, unsigned char out[PB_CHALLENGE_LEN])
{
    const unsigned char *fixed = pb_broker_fixed_challenge(b);
    if (fixed != NULL) {
        memcpy(out, fixed, PB_CHALLENGE_LEN);
        return 0;
    }
    return RAND_bytes(out, PB_CHALLENGE_LEN) == 1 ? 0 : -1;
}

/* login(username) -> (challenge, challenger) */
static void login(struct pb_call *call)
{
    const struct pb_value *name = pb_item(call->args, 0);
    if (pb_len(call->args) != 1 || call->kwargs->u.list.n != 0 || !pb_is_str(name) ||
        strlen(pb_str(name)) != name->u.s.len) {
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error,
                          "login takes one argument, the user name");
        return;
    }
    struct challenger *c = xcalloc(1, sizeof *c);
    c->username = xstrdup(pb_str(name));
    uint32_t luid = 0;
    if (make_challenge(call->broker, c->challenge) == 0)
        luid = pb_broker_export_handler(call->broker, &challenger_handler, c);
    if (luid == 0) {
        challenger_free(c);
        pb_call_fail_with(call, PB_ERR_PB, pb_parents_pb_error, "cannot start a login now");
        return;
    }
    struct pb_value *answer = pb_tuple();
    pb_append(answer, pb_bytes(c->challenge, PB_CHALLENGE_LEN));
    pb_append(answer, pb_remote(luid));
    pb_call_answer(call, answer);
}

void pb_login_root_call(struct pb_call *call)
{
    if (util_streq(call->method, "login"))
        login(call);
    else
        pb_call_fail_with(call, PB_ERR_NOSUCHMETHOD, pb_parents_no_such_method,
                          "No such method: remote_%s", call->method);
}

/* ------------------------------------------------------------ client */

struct client_login {
    struct pb_broker *broker;
    unsigned char hashed[MD5_LEN]; /* MD5(password): all the exchange needs */
    uint32_t mind;
    pb_answer_cb cb;
    void *arg;
};

static void finish(struct client_login *l, const struct pb_value *result,
                   const struct pb_value *failure)
{
    if (l->cb != NULL)
        l->cb(l->arg, result, failure);
    OPENSSL_cleanse(l->hashed, sizeof l->hashed);
    free(l);
}

/* Ends the login with a failure made here rather than by the server. */
static void finish_local(struct client_login *l, const char *why)
{
    struct pb_value *f = pb_failure_new(PB_ERR_PB, why, pb_parents_pb_error);
    finish(l, NULL, f);
    pb_value_free(f);
}

static void respond_answer_cb(void *arg, const struct pb_value *result,
                              const struct pb_value *failure)
{
    finish(arg, result, failure);
}

/* The server's (challenge, challenger): respond, then drop the challenger as Python does. */
static void login_answer_cb(void *arg, const struct pb_value *result,
                            const struct pb_value *failure)
{
    struct client_login *l = arg;
    const struct pb_value *challenge = pb_item(result, 0), *challenger = pb_item(result, 1);
    unsigned char digest[MD5_LEN];
    char *cause = NULL;
    if (failure != NULL) {
        finish(l, NULL, failure);
        return;
    }
    if (pb_len(result) != 2 || !pb_is_str(challenge) || challenger == NULL ||
        challenger->kind != PB_REMOTE) {
        finish_local(l, "the server's answer to login is not (challenge, challenger)");
        return;
    }
    if (response_for(l->hashed, challenge->u.s.data, challenge->u.s.len, digest) != 0) {
        finish_local(l, "cannot compute the login response");
        return;
    }
    struct pb_value *args = pb_append(pb_tuple(), pb_bytes(digest, MD5_LEN));
    pb_append(args, l->mind != 0 ? pb_remote(l->mind) : pb_none());
    struct pb_broker *b = l->broker;
    if (pb_broker_call(b, challenger->u.luid, "respond", args, NULL, respond_answer_cb, l,
                       &cause) != 0) {
        finish_local(l, cause);
        free(cause);
    }
    pb_broker_decref(b, challenger->u.luid);
}

int pb_broker_login(struct pb_broker *b, const char *username, const char *password, uint32_t mind,
                    pb_answer_cb cb, void *arg, char **cause)
{
    struct client_login *l = xcalloc(1, sizeof *l);
    *l = (struct client_login){.broker = b, .mind = mind, .cb = cb, .arg = arg};
    if (md5(password, strlen(password), l->hashed) != 0) {
        free(l);
        return util_cause(cause, "cannot compute MD5 (is it disabled in OpenSSL?)");
    }
    struct pb_value *args = pb_append(pb_tuple(), pb_bytes(username, strlen(username)));
    if (pb_broker_call(b, 0, "login", args, NULL, login_answer_cb, l, cause) != 0) {
        OPENSSL_cleanse(l->hashed, sizeof l->hashed);
        free(l);
        return -1;
    }
    return 0;
}
