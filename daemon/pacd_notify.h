/* notify — a pre-connected datagram socket to systemd's NOTIFY_SOCKET, so the
 * control loop can send WATCHDOG=1 without creating a socket each time (as
 * sd_notify() does). Everything else (READY=1, STATUS=, STOPPING=1) goes
 * through libsystemd's sd_notify from non-RT threads.
 */
#ifndef PACD_NOTIFY_H
#define PACD_NOTIFY_H

/* Open and connect a socket to $NOTIFY_SOCKET (path or '@' abstract name).
 * Init-only. Returns the fd, or -1 when NOTIFY_SOCKET is unset or unusable. */
int notify_open(void);

/* Send msg (e.g. "WATCHDOG=1") without blocking (MSG_DONTWAIT). RT-safe.
 * 0, or -errno (-EAGAIN when the receiver's queue is full: dropped). */
int notify_send(int fd, const char *msg);

void notify_close(int fd);

#endif
