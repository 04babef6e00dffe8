/* hal_log — one journal-style line on stderr for hal/ code that cannot use
 * the daemon's journal (daemon/pacd_journal.h): the `remote` backend's I/O
 * thread and the robot-side driver programs. The line is
 * "<PRIO>WHO: MESSAGE\n": pacd's journal glue and systemd read the "<N>"
 * prefix as the syslog priority (LOG_ERR 3, LOG_WARNING 4, LOG_NOTICE 5).
 *
 * Not for the control loop: formats with vsnprintf and writes to stderr
 * (a system call). Call it from I/O threads, start-up and exit paths. */
#ifndef PACD_HAL_LOG_H
#define PACD_HAL_LOG_H

/* Log one line: prio 0..7 (syslog), who the component ("hal remote",
 * "pacd-fake-driver"), fmt printf-style; the message is cut at 512 bytes.
 * Flushes stderr. Thread-safe (one fprintf per line). */
#ifdef __cplusplus
extern "C" {
#endif

__attribute__((format(printf, 3, 4)))
void hal_log(int prio, const char *who, const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
