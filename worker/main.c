/*
 * main.c: the `bbworker` command line, buildbot-worker's: create-worker
 * (the same options and the same buildbot.tac and info/ files), start
 * (daemonised with twistd.pid and twistd.log in the worker directory, or
 * --nodaemon), stop and restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage:    bbworker <command> [command options]\n\n"
               "Commands:\n"
               "  create-worker [options] <basedir> <master> <name> <passwd>\n"
               "  start [--nodaemon] [<basedir>]\n"
               "  stop [<basedir>]\n"
               "  restart [--nodaemon] [<basedir>]\n");
}

static int fail(const char *fmt, const char *a)
{
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return 1;
}

/* "host[:port]" or "[v6]:port", as buildbot-worker's validateMasterArgument. */
static int parse_master(const char *arg, struct bbw_tac *t)
{
    if (strncmp(arg, "http:", 5) == 0)
        return fail("<master> is not a URL - do not use URL", "");
    char *host;
    const char *port = NULL;
    if (arg[0] == '[' && strchr(arg, ']')) {
        const char *rb = strchr(arg, ']');
        host = xstrndup(arg + 1, (size_t)(rb - arg - 1));
        port = strchr(rb, ':') ? strchr(rb, ':') + 1 : NULL;
    } else if (strchr(arg, ':')) {
        const char *c = strchr(arg, ':');
        if (strchr(c + 1, ':'))
            return fail("invalid <master> argument '%s', if it is an ipv6 address, it must be "
                        "enclosed by []",
                        arg);
        host = xstrndup(arg, (size_t)(c - arg));
        port = c + 1;
    } else {
        host = xstrdup(arg);
    }
    long p = 9989;
    if (!*host) {
        free(host);
        return fail("invalid <master> argument '%s'", arg);
    }
    if (port && util_parse_long(port, 1, 65535, &p) < 0) {
        free(host);
        return fail("invalid master port '%s', needs to be a number", port);
    }
    t->host = host;
    t->port = (int)p;
    return 0;
}

/* A number, or "None" (-> none_value); 0o prefix for octal. */
static int num_opt(const char *name, const char *v, bool none_ok, long none_value, long *out)
{
    if (none_ok && strcmp(v, "None") == 0) {
        *out = none_value;
        return 0;
    }
    int base = 10;
    if (strncmp(v, "0o", 2) == 0) {
        base = 8;
        v += 2;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, base);
    if (!*v || *end || errno || n < 0 || n > (1L << 30) || (base == 10 && v[0] == '0' && v[1])) {
        fprintf(stderr, "%s parameter needs to be a number%s\n", name, none_ok ? " or None" : "");
        return -1;
    }
    *out = n;
    return 0;
}

/* An endpoint string bbworker can connect with (start would refuse another). */
static int endpoint_opt(const char *name, const char *v, char **out)
{
    struct bbw_endpoint ep;
    char *cause = NULL;
    if (bbw_endpoint_parse(v, &ep, &cause) < 0) {
        fprintf(stderr, "%s '%s': %s\n", name, v, cause);
        free(cause);
        return -1;
    }
    bool tls = ep.tls;
    bbw_endpoint_free(&ep);
    if (tls && strcmp(name, "proxy-connection-string") == 0) {
        fprintf(stderr, "%s '%s': the proxy is reached with tcp: (--use-tls is for the master)\n",
                name, v);
        return -1;
    }
    free(*out);
    *out = xstrdup(v);
    return 0;
}

static int write_new(const char *path, const char *text, int mode)
{
    char *cause = NULL;
    if (util_write_file(path, text, strlen(text), mode, &cause) < 0) {
        fprintf(stderr, "could not write %s: %s\n", path, cause);
        free(cause);
        return -1;
    }
    chmod(path, (mode_t)mode);
    return 0;
}

/* The tac (or buildbot.tac.new beside an edited one) and info/, as create-worker. */
static int make_dir(const char *dir, const struct bbw_tac *t, bool quiet)
{
    if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "error creating directory %s: %s\nfailed to configure worker in %s\n", dir,
                strerror(errno), t->basedir);
        return 1;
    }
    char *text = bbw_tac_render(t);
    char *path = xasprintf("%s/buildbot.tac", dir);
    size_t len;
    char *old = util_read_file(path, BBW_TAC_MAX, &len, NULL);
    int rc = 0;
    if (old && strlen(text) == len && memcmp(old, text, len) == 0) {
        if (!quiet)
            printf("buildbot.tac already exists and is correct\n");
    } else {
        if (old) {
            if (!quiet)
                printf("not touching existing buildbot.tac\ncreating buildbot.tac.new instead\n");
            free(path);
            path = xasprintf("%s/buildbot.tac.new", dir);
        }
        rc = write_new(path, text, 0600);
    }
    free(old);
    free(path);
    free(text);
    char *info = xasprintf("%s/info", dir);
    if (rc == 0 && mkdir(info, 0777) < 0 && errno != EEXIST)
        rc = -1;
    const char *files[][2] = {{"admin", "Your Name Here <admin@youraddress.invalid>\n"},
                              {"host", "Please put a description of this build host here\n"}};
    for (int i = 0; rc == 0 && i < 2; i++) {
        char *f = xasprintf("%s/%s", info, files[i][0]);
        if (!util_is_file(f)) {
            if (!quiet)
                printf("Creating info/%s, you need to edit it appropriately.\n", files[i][0]);
            mode_t um = umask(0);
            umask(um);
            rc = write_new(f, files[i][1], 0666 & ~(int)um); /* as Python's open() */
        }
        free(f);
    }
    free(info);
    if (rc < 0) {
        fprintf(stderr, "failed to configure worker in %s\n", t->basedir);
        return 1;
    }
    if (!quiet)
        printf("worker configured in %s\n", dir);
    return 0;
}

enum {
    O_CONNECTION = 256,
    O_DELETE,
    O_MAXDELAY,
    O_MAXRETRIES,
    O_NUMCPUS,
    O_PROTOCOL,
    O_PROXY,
    O_TLS,
    O_UMASK
};

static int create_worker(int argc, char **argv)
{
    static const struct option opts[] = {{"allow-shutdown", required_argument, 0, 'a'},
                                         {"connection-string", required_argument, 0, O_CONNECTION},
                                         {"delete-leftover-dirs", no_argument, 0, O_DELETE},
                                         {"force", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {"keepalive", required_argument, 0, 'k'},
                                         {"log-count", required_argument, 0, 'l'},
                                         {"maxdelay", required_argument, 0, O_MAXDELAY},
                                         {"maxretries", required_argument, 0, O_MAXRETRIES},
                                         {"no-logrotate", no_argument, 0, 'n'},
                                         {"numcpus", required_argument, 0, O_NUMCPUS},
                                         {"protocol", required_argument, 0, O_PROTOCOL},
                                         {"proxy-connection-string", required_argument, 0, O_PROXY},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"relocatable", no_argument, 0, 'r'},
                                         {"log-size", required_argument, 0, 's'},
                                         {"umask", required_argument, 0, O_UMASK},
                                         {"use-tls", no_argument, 0, O_TLS},
                                         {0, 0, 0, 0}};
    struct bbw_tac t;
    bbw_tac_defaults(&t);
    bool quiet = false, relocatable = false;
    long n;
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = getopt_long(argc, argv, "a:fhk:l:nqrs:", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (strcmp(optarg, "signal") != 0 && strcmp(optarg, "file") != 0)
                bad = fail("allow-shutdown needs to be one of 'signal' or 'file'", "");
            else
                t.allow_shutdown = xstrdup(optarg);
            break;
        case O_CONNECTION:
            bad = endpoint_opt("connection-string", optarg, &t.connection_string);
            break;
        case O_DELETE:
            t.delete_leftover_dirs = true;
            break;
        case 'f':
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'k':
            bad = num_opt("keepalive", optarg, false, 0, &t.keepalive);
            break;
        case 'l':
            bad = num_opt("log-count", optarg, true, -1, &n);
            t.max_rotated_files = (int)n;
            break;
        case O_MAXDELAY:
            bad = num_opt("maxdelay", optarg, false, 0, &t.maxdelay);
            break;
        case O_MAXRETRIES:
            bad = num_opt("maxretries", optarg, true, -1, &t.maxretries);
            break;
        case 'n':
            t.log_rotation = false;
            break;
        case O_NUMCPUS:
            bad = num_opt("numcpus", optarg, true, 0, &n);
            t.numcpus = (int)n;
            break;
        case O_PROTOCOL:
            if (strcmp(optarg, "pb") != 0)
                bad = fail("protocol '%s' is not supported by bbworker (only 'pb')", optarg);
            break;
        case O_PROXY:
            bad = endpoint_opt("proxy-connection-string", optarg, &t.proxy_connection_string);
            break;
        case 'q':
            quiet = true;
            break;
        case 'r':
            relocatable = true;
            break;
        case 's':
            bad = num_opt("log-size", optarg, false, 0, &t.rotate_length);
            break;
        case O_UMASK:
            bad = num_opt("umask", optarg, true, -1, &n);
            t.umask = n > 0777 ? (bad = -1, 0) : (int)n;
            break;
        case O_TLS:
            t.use_tls = true;
            break;
        default:
            bad = -1;
        }
    }
    if (!bad && t.connection_string && t.proxy_connection_string)
        bad = fail("--connection-string and --proxy-connection-string cannot be used together: "
                   "the proxy is given the master's <master> address",
                   "");
    if (!bad && argc - optind != 4)
        bad = fail("incorrect number of arguments", "");
    if (!bad)
        bad = parse_master(argv[optind + 1], &t);
    int rc = 1;
    if (!bad) {
        const char *dir = argv[optind];
        t.basedir = relocatable ? xstrdup(".") : xstrdup(dir);
        if (!relocatable && dir[0] != '/') {
            char cwd[PATH_MAX];
            if (getcwd(cwd, sizeof(cwd))) {
                free(t.basedir);
                t.basedir = xasprintf("%s/%s", cwd, dir);
            }
        }
        t.name = xstrdup(argv[optind + 2]);
        t.passwd = xstrdup(argv[optind + 3]);
        t.protocol = xstrdup("pb");
        rc = make_dir(dir, &t, quiet);
    } else {
        fprintf(stderr, "Usage:    bbworker create-worker [options] <basedir> <master> <name> "
                        "<passwd>\n");
    }
    bbw_tac_free(&t);
    return rc;
}

/* The worker directory argument of start/stop/restart (default: the current one). */
static char *dir_arg(int argc, char **argv, bool *nodaemon, bool *quiet)
{
    char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nodaemon") == 0)
            *nodaemon = true;
        else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
            *quiet = true;
        else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "bbworker %s: unexpected argument '%s'\n", argv[0], argv[i]);
            free(dir);
            return NULL;
        } else
            dir = xstrdup(argv[i]);
    }
    if (!dir) {
        char cwd[PATH_MAX];
        dir = xstrdup(getcwd(cwd, sizeof(cwd)) ? cwd : ".");
    }
    char *abs = realpath(dir, NULL);
    if (!abs) {
        fprintf(stderr, "invalid worker directory '%s': %s\n", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    free(dir);
    return abs;
}

static long read_pid(const char *dir)
{
    char *path = xasprintf("%s/twistd.pid", dir);
    size_t len;
    char *text = util_read_file(path, 64, &len, NULL);
    free(path);
    long pid = 0;
    if (text) {
        text[strcspn(text, "\r\n ")] = 0;
        if (util_parse_long(text, 1, INT_MAX, &pid) < 0)
            pid = 0;
    }
    free(text);
    return pid;
}

/* The process is gone, or only a zombie that its new parent has not reaped yet. */
static bool process_gone(long pid)
{
    if (kill((pid_t)pid, 0) < 0)
        return true;
    char path[64], text[256];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = 0;
    const char *paren = strrchr(text, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static int stop_worker(const char *dir, bool quiet)
{
    long pid = read_pid(dir);
    if (!pid || kill((pid_t)pid, 0) < 0) {
        if (!quiet)
            printf("worker not running\n");
        return pid ? 0 : 1;
    }
    kill((pid_t)pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (process_gone(pid)) {
            if (!quiet)
                printf("worker process %ld is dead\n", pid);
            return 0;
        }
    }
    fprintf(stderr, "never saw process go away\n");
    return 1;
}

/* Loads the tac and runs the worker; daemonised unless `nodaemon`. */
static int start_worker(const char *dir, bool nodaemon, bool quiet)
{
    struct bbw_tac t;
    bbw_tac_defaults(&t);
    char *cause = NULL;
    if (bbw_tac_load(&t, dir, &cause) < 0) {
        fprintf(stderr, "%s\n", cause);
        free(cause);
        bbw_tac_free(&t);
        return 1;
    }
    long old = read_pid(dir);
    if (old && !process_gone(old)) {
        fprintf(stderr, "worker already running as pid %ld (%s/twistd.pid)\n", old, dir);
        bbw_tac_free(&t);
        return 1;
    }
    if (!nodaemon) {
        pid_t child = fork();
        if (child < 0) {
            perror("fork");
            return 1;
        }
        if (child > 0) {
            int st;
            waitpid(child, &st, 0); /* the first child exits once the daemon runs */
            if (!quiet)
                printf("bbworker started in %s (see twistd.log)\n", dir);
            bbw_tac_free(&t);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        }
        setsid();
        if (fork() != 0)
            _exit(0);
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
    }
    int rc = bbw_session_run(&t, dir, nodaemon);
    bbw_tac_free(&t);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("worker version: %s\nbbworker %s\n", BBW_VERSION, BBM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "create-worker") == 0)
        return create_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "start") && strcmp(cmd, "stop") && strcmp(cmd, "restart")) {
        usage(stderr);
        return 1;
    }
    bool nodaemon = false, quiet = false;
    char *dir = dir_arg(argc - 1, argv + 1, &nodaemon, &quiet);
    if (!dir)
        return 1;
    int rc = 0;
    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "restart") == 0)
        rc = stop_worker(dir, quiet || strcmp(cmd, "restart") == 0);
    if (strcmp(cmd, "stop") != 0)
        rc = start_worker(dir, nodaemon, quiet);
    free(dir);
    return rc;
}
