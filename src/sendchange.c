/*
 * `bbmaster sendchange`: Buildbot's `buildbot sendchange` client.  It logs
 * in on the master's PB port as the user of a bbm.changes.pb change source
 * (change/changepw by default) and calls addChange with the same dict
 * Buildbot's Sender sends, so it works with a Buildbot master as well, and
 * Buildbot's own sendchange works with bbmaster.  Blocking I/O: it is a
 * short-lived command.
 */
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "master.h"
#include "pb/pb.h"
#include "util/util.h"

#define SENDCHANGE_TIMEOUT_MS 30000

static const char usage[] =
    "usage: bbmaster sendchange --master HOST:PORT [options] [FILES...]\n"
    "  -m, --master HOST:PORT   the master's PB port\n"
    "  -a, --auth USER:PASS     the change source's login (change:changepw)\n"
    "  -W, --who NAME           the author\n"
    "  -R, --repository URL     -P, --project NAME   -b, --branch NAME\n"
    "  -C, --category NAME      -r, --revision REV   --codebase NAME\n"
    "  -c, --comments TEXT      -F, --logfile FILE (comments from a file, - for stdin)\n"
    "  -w, --when EPOCH         -l, --revlink URL    -s, --vc git|svn|hg|...\n"
    "  -p, --property NAME:VALUE (repeatable)\n";

struct client {
    int fd;
    struct pb_broker *broker;
    struct pb_value *change;
    const char *user, *password;
    bool done, failed;
};

static void send_cb(void *ctx, const char *data, size_t len)
{
    struct client *c = ctx;
    while (len > 0 && !c->failed) {
        ssize_t n = write(c->fd, data, len);
        if (n <= 0) {
            fprintf(stderr, "bbmaster sendchange: the connection was lost\n");
            c->failed = c->done = true;
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

static void report(struct client *c, const struct pb_value *failure, const char *what)
{
    char *desc = pb_failure_describe(failure);
    fprintf(stderr, "bbmaster sendchange: %s: %s\n", what, desc);
    free(desc);
    c->failed = c->done = true;
}

static void added_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct client *c = arg;
    (void)result;
    if (failure != NULL) {
        report(c, failure, "the master refused the change");
        return;
    }
    c->done = true;
}

static void login_cb(void *arg, const struct pb_value *result, const struct pb_value *failure)
{
    struct client *c = arg;
    if (failure != NULL) {
        report(c, failure, "login failed");
        return;
    }
    char *cause = NULL;
    struct pb_value *args = pb_append(pb_tuple(), c->change);
    c->change = NULL;
    if (pb_broker_call(c->broker, result->u.luid, "addChange", args, NULL, added_cb, c, &cause) <
        0) {
        fprintf(stderr, "bbmaster sendchange: %s\n", cause);
        free(cause);
        c->failed = c->done = true;
    }
}

static void ready_cb(void *ctx)
{
    struct client *c = ctx;
    char *cause = NULL;
    if (pb_broker_login(c->broker, c->user, c->password, 0, login_cb, c, &cause) < 0) {
        fprintf(stderr, "bbmaster sendchange: %s\n", cause);
        free(cause);
        c->failed = c->done = true;
    }
}

static int dial(const char *master)
{
    char host[256];
    const char *colon = strrchr(master, ':');
    if (colon == NULL || colon == master || (size_t)(colon - master) >= sizeof host) {
        fprintf(stderr, "bbmaster sendchange: --master must be HOST:PORT, not '%s'\n", master);
        return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - master), master);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bbmaster sendchange: %s: %s\n", master, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "bbmaster sendchange: cannot connect to %s\n", master);
    return fd;
}

static int run(struct client *c, const char *master)
{
    c->fd = dial(master);
    if (c->fd < 0)
        return 1;
    static const struct pb_broker_ops ops = {.send = send_cb, .ready = ready_cb};
    c->broker = pb_broker_new(false, &ops, c);
    char chunk[65536];
    while (!c->done) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, SENDCHANGE_TIMEOUT_MS) <= 0) {
            fprintf(stderr, "bbmaster sendchange: no answer from %s\n", master);
            c->failed = true;
            break;
        }
        ssize_t n = read(c->fd, chunk, sizeof chunk);
        char *cause = NULL;
        if (n <= 0) {
            fprintf(stderr, "bbmaster sendchange: %s closed the connection\n", master);
            c->failed = true;
        } else if (pb_broker_receive(c->broker, chunk, (size_t)n, &cause) < 0) {
            fprintf(stderr, "bbmaster sendchange: %s\n", cause);
            free(cause);
            c->failed = true;
        }
        if (c->failed)
            break;
    }
    pb_broker_free(c->broker);
    close(c->fd);
    return c->failed ? 1 : 0;
}

static struct pb_value *opt_text(const char *s)
{
    return s != NULL ? pb_text(s) : pb_none();
}

static char *read_comments(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL)
        return NULL;
    struct buf b;
    buf_init(&b, 16 * 1024 * 1024);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    if (f != stdin)
        fclose(f);
    return buf_take(&b);
}

int master_sendchange(int argc, char **argv)
{
    static const struct option longopts[] = {{"master", required_argument, NULL, 'm'},
                                             {"auth", required_argument, NULL, 'a'},
                                             {"who", required_argument, NULL, 'W'},
                                             {"repository", required_argument, NULL, 'R'},
                                             {"project", required_argument, NULL, 'P'},
                                             {"branch", required_argument, NULL, 'b'},
                                             {"category", required_argument, NULL, 'C'},
                                             {"revision", required_argument, NULL, 'r'},
                                             {"property", required_argument, NULL, 'p'},
                                             {"comments", required_argument, NULL, 'c'},
                                             {"logfile", required_argument, NULL, 'F'},
                                             {"when", required_argument, NULL, 'w'},
                                             {"revlink", required_argument, NULL, 'l'},
                                             {"vc", required_argument, NULL, 's'},
                                             {"codebase", required_argument, NULL, 'B'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *master = NULL, *auth = "change:changepw", *who = NULL, *repository = "",
               *project = "", *branch = NULL, *category = NULL, *revision = NULL, *comments = NULL,
               *logfile = NULL, *when = NULL, *revlink = "", *vc = NULL, *codebase = NULL;
    struct pb_value *props = pb_dict();
    int opt, rc = 2;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:a:W:R:P:b:C:r:p:c:F:w:l:s:h", longopts, NULL)) != -1) {
        const char **slot[] = {
            ['m'] = &master,   ['a'] = &auth,    ['W'] = &who,      ['R'] = &repository,
            ['P'] = &project,  ['b'] = &branch,  ['C'] = &category, ['r'] = &revision,
            ['c'] = &comments, ['F'] = &logfile, ['w'] = &when,     ['l'] = &revlink,
            ['s'] = &vc,       ['B'] = &codebase};
        if (opt == 'p') {
            const char *colon = strchr(optarg, ':');
            if (colon == NULL) {
                fprintf(stderr, "bbmaster sendchange: --property must be NAME:VALUE\n");
                goto out;
            }
            char *name = xstrndup(optarg, (size_t)(colon - optarg));
            pb_dict_set(props, name, pb_text(colon + 1));
            free(name);
        } else if (opt > 0 && opt < (int)UTIL_NELEM(slot) && slot[opt] != NULL) {
            *slot[opt] = optarg;
        } else {
            fputs(usage, opt == 'h' ? stdout : stderr);
            rc = opt == 'h' ? 0 : 2;
            goto out;
        }
    }
    const char *colon = strchr(auth, ':');
    if (master == NULL || who == NULL || colon == NULL) {
        fprintf(stderr, "bbmaster sendchange: %s\n%s",
                master == NULL ? "--master is required"
                : who == NULL  ? "--who is required"
                               : "--auth must be USER:PASS",
                usage);
        goto out;
    }
    char *text = logfile != NULL ? read_comments(logfile) : xstrdup(comments ? comments : "");
    if (text == NULL) {
        fprintf(stderr, "bbmaster sendchange: cannot read %s\n", logfile);
        goto out;
    }
    struct pb_value *files = pb_list();
    for (int i = optind; i < argc; i++)
        pb_append(files, pb_text(argv[i]));
    struct pb_value *change = pb_dict();
    pb_dict_set(change, "project", pb_text(project));
    pb_dict_set(change, "repository", pb_text(repository));
    pb_dict_set(change, "who", pb_text(who));
    pb_dict_set(change, "files", files);
    pb_dict_set(change, "comments", pb_text(text));
    pb_dict_set(change, "branch", opt_text(branch));
    pb_dict_set(change, "revision", opt_text(revision));
    pb_dict_set(change, "category", opt_text(category));
    pb_dict_set(change, "when", when != NULL ? pb_float(atof(when)) : pb_none());
    pb_dict_set(change, "properties", props);
    props = NULL;
    pb_dict_set(change, "revlink", pb_text(revlink));
    pb_dict_set(change, "src", opt_text(vc));
    if (codebase != NULL)
        pb_dict_set(change, "codebase", pb_text(codebase));
    free(text);
    char *user = xstrndup(auth, (size_t)(colon - auth));
    struct client c = {.change = change, .user = user, .password = colon + 1};
    rc = run(&c, master);
    pb_value_free(c.change);
    free(user);
    if (rc == 0)
        printf("change sent successfully\n");
out:
    pb_value_free(props);
    return rc;
}
