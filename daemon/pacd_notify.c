#include "pacd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_open(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return -1;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                  (path[0] == '/' ? 1 : 0));
    if (connect(fd, (struct sockaddr *)&sa, salen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int notify_send(int fd, const char *msg)
{
    if (fd < 0)
        return -EBADF;
    if (send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        return -errno;
    return 0;
}

void notify_close(int fd)
{
    if (fd >= 0)
        close(fd);
}
