#include "pacd_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The pid written in an open lock file, or 0 when there is none. */
static long lock_owner(int fd)
{
    char buf[32];
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    long pid = strtol(buf, NULL, 10);
    return pid > 0 ? pid : 0;
}

int instance_lock(instance_lock_t *lk, const char *const *endpoints, int n, char *err,
                  size_t errlen)
{
    lk->n = 0;
    for (int i = 0; i < n && i < LOCK_MAX_ENDPOINTS; i++) {
        const char *ep = endpoints[i];
        if (!ep || strncmp(ep, "ipc://", 6) != 0 || ep[6] == '@')
            continue; /* abstract sockets (ipc://@name) are never unlinked */
        /* the same path twice in one config is the config's problem */
        char path[4096];
        if (snprintf(path, sizeof path, "%s.lock", ep + 6) >= (int)sizeof path) {
            snprintf(err, errlen, "%s: path too long", ep);
            instance_unlock(lk);
            return -ENAMETOOLONG;
        }
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot open the lock file %s of %s: %s (the directory must "
                     "exist and be writable by pacd)", path, ep, strerror(e));
            instance_unlock(lk);
            return -e;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = lock_owner(fd);
            close(fd);
            instance_unlock(lk);
            if (e == EWOULDBLOCK && pid == (long)getpid()) {
                snprintf(err, errlen, "%s is given to two sockets in the config: each socket "
                         "needs its own endpoint", ep);
                return -EINVAL;
            }
            if (e == EWOULDBLOCK) {
                char who[48] = "another pacd";
                if (pid)
                    snprintf(who, sizeof who, "another pacd (pid %ld)", pid);
                snprintf(err, errlen, "%s is running on %s (it holds %s): refusing to take "
                         "over its sockets; stop it first (systemctl stop pacd%s) or give this "
                         "one other endpoints", who, ep, path, pid ? ", or kill that pid" : "");
                return -EBUSY;
            }
            snprintf(err, errlen, "cannot lock %s of %s: %s", path, ep, strerror(e));
            return -e;
        }
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
            int e = errno;
            snprintf(err, errlen, "cannot write the lock file %s: %s", path, strerror(e));
            close(fd);
            instance_unlock(lk);
            return -e;
        }
        lk->fd[lk->n++] = fd;
    }
    return 0;
}

void instance_unlock(instance_lock_t *lk)
{
    if (!lk)
        return;
    for (int i = 0; i < lk->n; i++)
        close(lk->fd[i]);
    lk->n = 0;
}
