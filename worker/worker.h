/*
 * bbworker: a build worker in C that speaks buildbot-worker's side of
 * Buildbot's PB protocol.  It uses src/pb (the codec and broker) and src/util
 * and nothing of the master's engine.
 *
 * tac.c reads and writes buildbot.tac, the settings file that
 * `buildbot-worker create-worker` writes and owners edit: the module-level
 * assignments of Python literals are the settings (bbw_tac_*).  main.c is
 * the command line (create-worker, start, stop, restart).
 */
#ifndef BBW_WORKER_H
#define BBW_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#define BBW_VERSION "3.7.0-bbworker-" BBM_VERSION
#define BBW_TAC_MAX (256 * 1024) /* the largest buildbot.tac read */
#define BBW_ENDPOINT_MAX 4096    /* the longest endpoint string */
#define BBW_CONNECT_TIMEOUT 30   /* seconds a connection attempt may take (Twisted's) */
#define BBW_TIMEOUT_MAX 86400    /* the longest timeout= of an endpoint */

/*
 * Where to connect: a Twisted client endpoint ("tcp:host=H:port=P",
 * "tls:host=H:port=P:trustRoots=DIR"), or the tac's buildmaster_host, port
 * and use_tls, which are "tcp:" or "tls:" to that host and port.
 */
struct bbw_endpoint {
    bool tls;          /* TLS, the server's certificate checked against `host` */
    char *host;        /* a name or an address */
    int port;          /* 1..65535 */
    long timeout;      /* seconds a connection attempt may take */
    char *bind;        /* bindAddress: the local address to connect from, or NULL */
    char *trust_roots; /* tls: a directory of PEM authorities, NULL = the system's */
};

/*
 * Parses a Twisted client endpoint string; only tcp: and tls: are known,
 * every other type or key is refused.  Returns 0 with *ep filled (free with
 * bbw_endpoint_free), or -1 with *cause (malloc'd).
 */
int bbw_endpoint_parse(const char *s, struct bbw_endpoint *ep, char **cause);
void bbw_endpoint_free(struct bbw_endpoint *ep);

/*
 * The answer of an HTTP proxy to CONNECT, the `len` bytes received so far: 0
 * while its blank line has not come, the answer's length (through the blank
 * line) when its status is 200, -1 for any other status.
 */
long bbw_proxy_answer(const char *data, size_t len);

/* The settings of one worker directory, as buildbot.tac assigns them. */
struct bbw_tac {
    char *basedir;        /* as written: '.' for a relocatable tac */
    char *host;           /* buildmaster_host; NULL = None (with connection_string) */
    int port;             /* 1..65535; 0 = None (with connection_string) */
    char *name;           /* workername */
    char *passwd;         /* passwd */
    long keepalive;       /* seconds; 0 = none */
    int umask;            /* -1 = None (leave the process umask) */
    long maxdelay;        /* seconds, the longest wait between connection attempts */
    int numcpus;          /* 0 = None (count them) */
    char *allow_shutdown; /* NULL, "signal" or "file" */
    long maxretries;      /* -1 = None (retry forever) */
    bool use_tls;
    bool delete_leftover_dirs;
    char *proxy_connection_string; /* NULL = None */
    char *connection_string;       /* NULL = None (4.x tac) */
    char *protocol;                /* "pb" */
    long rotate_length;            /* rotateLength: bytes; 0 = no rotation */
    int max_rotated_files;         /* maxRotatedFiles: -1 = None (unlimited) */
    bool log_rotation;             /* the tac sets up twistd.log rotation */
    struct bbw_endpoint master;    /* set by bbw_tac_parse: where the master is */
    struct bbw_endpoint proxy;     /* set by bbw_tac_parse: the HTTP proxy (host NULL: none) */
};

/* The defaults of create-worker. Frees nothing; strings are set to NULL. */
void bbw_tac_defaults(struct bbw_tac *t);
void bbw_tac_free(struct bbw_tac *t);

/*
 * Parses a buildbot.tac text (`file` names it in messages).  Only
 * module-level assignments of Python literals (strings, numbers, 0o octal,
 * None, True, False) to the known names are read; any other line is
 * ignored.  A known name assigned something else is an error
 * "FILE:LINE: ...", as is an endpoint string bbworker cannot use.  Fills
 * `master` and `proxy` from the settings.  Returns 0, or -1 with *cause
 * (malloc'd).
 */
int bbw_tac_parse(struct bbw_tac *t, const char *text, size_t len, const char *file, char **cause);

/* Reads DIR/buildbot.tac; the same as bbw_tac_parse. */
int bbw_tac_load(struct bbw_tac *t, const char *dir, char **cause);

/*
 * The text create-worker writes for these settings, byte for byte as
 * buildbot-worker 3.7's (malloc'd).
 */
char *bbw_tac_render(const struct bbw_tac *t);

/*
 * Runs the worker of directory `dir` (absolute) with settings `t` until it
 * is stopped (SIGTERM, SIGINT, the master's shutdown, maxretries): writes
 * twistd.pid, logs to twistd.log (and stderr when `foreground`), connects
 * and reconnects.  Returns the process exit status.
 */
int bbw_session_run(const struct bbw_tac *t, const char *dir, bool foreground);

/* Python's repr() of a str (ASCII-safe: non-ASCII bytes are kept as they are). */
char *bbw_py_repr(const char *s);

#endif
