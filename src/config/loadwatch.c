/*
 * The watch on master.lua's run.  A count hook makes Lua call into the
 * debug machinery at every instruction while it is set, whatever its count:
 * a tenth of the instructions of loading cpython/'s configuration went there.
 * So the file's own run has no hook on its main thread.  A timer on the
 * thread's CPU time stands for it: when the run has used its time, the
 * timer's signal sets the hook (lua_sethook may be called from a signal
 * handler, as the standalone lua does on Ctrl-C), and the hook raises the
 * budget's error at the next instruction.  Coroutines keep their own hooks.
 *
 * The signal (SIGVTALRM) goes to the loading thread alone, and is unblocked
 * there while the watch is on; the handler acts only on the state the
 * thread watches, so a signal that comes after the watch is a no-op.
 */
#include "config/internal.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WATCH_SIGNAL SIGVTALRM

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* What the thread's watch acts on; L is NULL when none is on. */
static _Thread_local struct {
    lua_State *volatile L;
    lua_Hook hook;
    volatile sig_atomic_t *fired;
} watched;

static void on_signal(int sig)
{
    (void)sig;
    lua_State *L = watched.L;
    if (L == NULL)
        return;
    *watched.fired = 1;
    lua_sethook(L, watched.hook, LUA_MASKCOUNT, 1);
}

static bool installed;

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    installed = sigaction(WATCH_SIGNAL, &sa, NULL) == 0;
}

bool cfg_watch_start(struct cfg_watch *w, lua_State *L, lua_Hook hook, volatile sig_atomic_t *fired,
                     unsigned cpu_ms)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
    w->on = false;
    if (!installed)
        return false;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = WATCH_SIGNAL;
    ev.sigev_notify_thread_id = gettid();
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &ev, &w->timer) != 0)
        return false;
    watched.hook = hook;
    watched.fired = fired;
    watched.L = L;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, WATCH_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, &w->mask);
    struct itimerspec when;
    memset(&when, 0, sizeof when);
    when.it_value.tv_sec = cpu_ms / 1000;
    when.it_value.tv_nsec = (long)(cpu_ms % 1000) * 1000000;
    if (timer_settime(w->timer, 0, &when, NULL) != 0) {
        w->on = true;
        cfg_watch_stop(w);
        return false;
    }
    w->on = true;
    return true;
}

void cfg_watch_stop(struct cfg_watch *w)
{
    if (!w->on)
        return;
    watched.L = NULL;
    timer_delete(w->timer);
    pthread_sigmask(SIG_SETMASK, &w->mask, NULL);
    w->on = false;
}
