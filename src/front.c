/*
 * How the light `bbmaster` program runs a verb that needs the master's code:
 * it replaces itself with `bbmaster-core` and the same arguments, so that the
 * process keeps its pid (the one systemd and the pidfile know) and its
 * command line.  bbmaster-core is looked for next to this program (the build
 * tree, or an installation in one directory), then where Meson installed it
 * (BBM_CORE_PATH, under libexecdir).
 */
#include "master.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CORE_NAME "bbmaster-core"

/* Replaces the process with the bbmaster-core next to this program, if there is one. */
static void exec_beside_self(char **argv)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash == NULL || (size_t)(slash + 1 - path) + sizeof CORE_NAME > sizeof path)
        return;
    memcpy(slash + 1, CORE_NAME, sizeof CORE_NAME);
    if (access(path, X_OK) == 0)
        execv(path, argv);
}

int master_core(const char *verb, const struct master_args *a, int argc, char **argv)
{
    (void)verb;
    (void)a;
    (void)argc;
    exec_beside_self(argv);
    execv(BBM_CORE_PATH, argv);
    fprintf(stderr, "bbmaster: cannot run %s: %s\n", BBM_CORE_PATH, strerror(errno));
    return 1;
}
