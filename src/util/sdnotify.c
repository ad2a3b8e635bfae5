/*
 * systemd's readiness protocol without libsystemd: when the service manager started the
 * master with NOTIFY_SOCKET set (a unit of Type=notify or notify-reload), a state such as
 * "READY=1" is one datagram to that socket (a path, or an abstract name written with a
 * leading '@').  Without NOTIFY_SOCKET, nothing is sent.  A failure is logged once and
 * otherwise ignored: the master runs the same with or without a listener.
 */
#include "util/util.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void util_sd_notify(const char *state)
{
    static bool warned;
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) {
        if (!warned)
            log_warn("systemd: NOTIFY_SOCKET \"%s\" is not a socket path", UTIL_ESC(path));
        warned = true;
        return;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t n = -1;
    if (fd >= 0) {
        n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
        close(fd);
    }
    if (n < 0 && !warned) {
        log_warn("systemd: cannot notify %s: %s", UTIL_ESC(path), strerror(errno));
        warned = true;
    }
}
