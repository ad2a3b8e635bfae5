/*
 * The running master: one libuv loop (the engine thread) that owns the
 * configuration and the worker registry, and the signals that drive it:
 * SIGHUP reloads master.lua (atomically: a bad file changes nothing), SIGTERM
 * and SIGINT stop it.  Stopping is bounded: connections are closed, and if
 * the loop has not drained within MASTER_STOP_BOUND seconds an alarm ends the
 * process anyway, so `stop` can never hang the way Buildbot's can.
 */
#include "master.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "config/config.h"
#include "workers/workers.h"

struct master {
    uv_loop_t loop;
    struct cfg *cfg;
    struct wk_registry *workers;
    uv_signal_t sig_term, sig_int, sig_hup;
    bool stopping;
};

static void notify(int *fd, const char *msg)
{
    if (*fd < 0)
        return;
    ssize_t n = write(*fd, msg, strlen(msg));
    (void)n;
    close(*fd);
    *fd = -1;
}

static void log_config_errors(enum log_level level, const char *errors)
{
    char *copy = xstrdup(errors), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        log_write(level, "%s", line);
    free(copy);
}

static void reconfig(struct master *m)
{
    log_info("loading configuration from %s", MASTER_CONFIG);
    struct cfg *next = NULL;
    char *cause = NULL;
    uint64_t t0 = util_mono_ms();
    if (cfg_load(MASTER_CONFIG, &next, &cause) != 0) {
        log_error("error while parsing config file:");
        log_config_errors(LOG_ERROR, cause);
        log_error(MASTER_MSG_RECONFIG_FAILED);
        free(cause);
        return;
    }
    if (wk_listen(m->workers, next->pb_interface, next->pb_port, &cause) != 0) {
        log_error("%s", cause);
        log_error(MASTER_MSG_RECONFIG_FAILED);
        free(cause);
        cfg_free(next);
        return;
    }
    wk_reconfig(m->workers, next);
    cfg_free(m->cfg);
    m->cfg = next;
    log_info(MASTER_MSG_RECONFIG_OK " (%llu ms)", (unsigned long long)(util_mono_ms() - t0));
}

static void stop(struct master *m, const char *why)
{
    if (m->stopping)
        return;
    m->stopping = true;
    log_info("%s: shutting down", why);
    alarm(MASTER_STOP_BOUND);
    wk_close_all(m->workers);
    uv_close((uv_handle_t *)&m->sig_term, NULL);
    uv_close((uv_handle_t *)&m->sig_int, NULL);
    uv_close((uv_handle_t *)&m->sig_hup, NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct master *m = h->data;
    if (signum == SIGHUP)
        reconfig(m);
    else
        stop(m, signum == SIGTERM ? "received SIGTERM" : "received SIGINT");
}

static void watch_signal(struct master *m, uv_signal_t *h, int signum)
{
    uv_signal_init(&m->loop, h);
    h->data = m;
    uv_signal_start(h, signal_cb, signum);
}

static int start(struct master *m, char **cause)
{
    char *errors = NULL;
    log_info("bbmaster %s starting in %s", BBM_VERSION, getcwd((char[4096]){0}, 4096));
    if (cfg_load(MASTER_CONFIG, &m->cfg, &errors) != 0) {
        log_error("error while parsing config file:");
        log_config_errors(LOG_ERROR, errors);
        util_cause(cause, "%s", errors);
        free(errors);
        return -1;
    }
    log_info("configuration loaded: %zu worker(s), %zu builder(s)", m->cfg->n_workers,
             m->cfg->n_builders);
    m->workers = wk_registry_new(&m->loop, m->cfg);
    if (m->cfg->pb_port > 0 &&
        wk_listen(m->workers, m->cfg->pb_interface, m->cfg->pb_port, cause) != 0) {
        log_error("%s", *cause);
        return -1;
    }
    watch_signal(m, &m->sig_term, SIGTERM);
    watch_signal(m, &m->sig_int, SIGINT);
    watch_signal(m, &m->sig_hup, SIGHUP);
    return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int master_run(int ready_fd, char **cause)
{
    struct master m;
    memset(&m, 0, sizeof m);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&m.loop);
    int rc = start(&m, cause);
    if (rc != 0) {
        log_error(MASTER_MSG_START_FAILED);
        notify(&ready_fd, "fail\n");
        if (m.workers != NULL)
            wk_registry_free(m.workers);
    } else {
        log_info(MASTER_MSG_RUNNING);
        notify(&ready_fd, "ok\n");
        uv_run(&m.loop, UV_RUN_DEFAULT);
        wk_registry_free(m.workers);
    }
    uv_walk(&m.loop, close_walk_cb, NULL);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    uv_loop_close(&m.loop);
    cfg_free(m.cfg);
    if (rc == 0)
        log_info("Server Shut Down.");
    return rc;
}
