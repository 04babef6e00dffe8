/* journal — pacd's log lines, with structured fields under journald.
 *
 * Under systemd with stderr connected to the journal (JOURNAL_STREAM names
 * the device and inode of stderr, as systemd sets it for a service), each
 * line is sent to journald with sd_journal_send(3) and these fields:
 *   MESSAGE (the text without its "pacd: " prefix), PRIORITY,
 *   SYSLOG_IDENTIFIER=pacd, PACD_ROBOT ([robot] name), PACD_MODEL_SHA256
 *   (the checkpoint's sha256, 64 hex digits), PACD_EPISODE_ID (while an
 *   episode is open: from its start line to its end line).
 * `journalctl -u pacd PACD_EPISODE_ID=...` then lists one episode's lines.
 * Elsewhere (a terminal, a file, the tests) and when journald refuses a
 * line, the same text goes to stderr with its sd-daemon(3) "<N>" prefix.
 *
 * Threading: any thread but the control loop's: formatting and the journal
 * socket may block (the loop reports through its event ring instead).
 */
#ifndef PACD_JOURNAL_H
#define PACD_JOURNAL_H

/* Decide between journald and stderr (reads JOURNAL_STREAM). Init-only, main
 * thread, before other threads log; calling again decides again. */
void journal_init(void);

/* The robot name and model sha256 put on every later line; NULL or "" leaves
 * the field out. Copies both. Init-only (main thread, after the checkpoint
 * is loaded, before the service thread starts). */
void journal_set_context(const char *robot, const char *model_sha256);

/* The model sha256 for later lines after a checkpoint swap; copies it.
 * Service thread. */
void journal_set_model(const char *model_sha256);

/* The open episode's id for later lines; NULL or "" when none. Copies it.
 * Service thread (it sees episodes start and end). */
void journal_set_episode(const char *episode_id);

/* Log one line at syslog priority (LOG_ERR..LOG_DEBUG, <syslog.h>); fmt is
 * printf's, starting with "pacd: " by convention, one trailing newline
 * optional. Lines longer than 2 KiB are cut. Not for the control loop. */
void journal_printf(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
