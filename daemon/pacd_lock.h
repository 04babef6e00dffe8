/* lock — one pacd per set of ipc:// endpoints.
 *
 * libzmq unlinks an ipc:// socket file that exists and binds a new one, so a
 * second pacd started with the same config would silently take the sockets
 * of a running one (which goes on driving its arm, unreachable). pacd
 * therefore holds an flock(2) on "PATH.lock" beside every ipc:// socket PATH
 * it binds, for its whole life; the file holds the owner's pid. The kernel
 * drops the lock when the process dies (even by SIGKILL), so a stale file
 * never blocks a restart. TCP endpoints need no lock: the kernel refuses a
 * second bind (EADDRINUSE).
 *
 * Threading: init-only (main thread, before any socket is bound).
 */
#ifndef PACD_LOCK_H
#define PACD_LOCK_H

#include <stddef.h>

#define LOCK_MAX_ENDPOINTS 8

typedef struct {
    int n;
    int fd[LOCK_MAX_ENDPOINTS];
} instance_lock_t;

/* Lock every ipc:// endpoint among endpoints[0..n) (others and "" are
 * skipped; n <= LOCK_MAX_ENDPOINTS). Returns 0 with the locks held in *lk,
 * -EBUSY when another process holds one (err names its pid and the
 * endpoint), or another negative errno when a lock file cannot be opened
 * (err says which and why). On failure nothing stays locked. */
int instance_lock(instance_lock_t *lk, const char *const *endpoints, int n, char *err,
                  size_t errlen);

/* Release the locks (the files stay: removing a lock file another process
 * may be opening would let two instances lock different files). NULL-safe. */
void instance_unlock(instance_lock_t *lk);

#endif
