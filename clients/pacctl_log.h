/* pacctl_log — `pacctl log verify|cat`: check and print pacd episode logs
 * (MCAP, docs/episode-log.md) with the log library's reader (log/log_reader.h).
 *
 * Threading: none of these are RT-safe (they read files and allocate); they
 * are for the command-line client and tests.
 */
#ifndef PACCTL_LOG_H
#define PACCTL_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of pacctl_log_main. */
enum {
    PACCTL_LOG_OK = 0,          /* valid; also an unfinished file without --strict */
    PACCTL_LOG_CORRUPT = 1,     /* corruption or a broken invariant (error_offset says where) */
    PACCTL_LOG_USAGE = 2,       /* bad arguments or the file cannot be read */
    PACCTL_LOG_UNFINISHED = 3,  /* unfinished file with --strict */
};

/* `pacctl log cat` over the episode log bytes data[0, len) (borrowed): print
 * each message of `topic` as one JSON line to out, problems to errs (path
 * names the file in them). Never reads outside the buffer and never crashes
 * on any input. Returns an exit code: PACCTL_LOG_OK (also for an unfinished
 * file, which gets a note on errs) or PACCTL_LOG_CORRUPT. */
int pacctl_log_cat_buffer(const uint8_t *data, size_t len, const char *path, const char *topic,
                          FILE *out, FILE *errs);

/* `pacctl log ...` with argv[0] == "log":
 *   log verify [--json] [--strict] FILE
 *   log cat [--topic TOPIC] FILE     (default topic /pacd/step; one JSON object per line)
 * Prints to stdout (errors to stderr). Returns an exit code (PACCTL_LOG_OK ...). */
int pacctl_log_main(int argc, char **argv);

#endif
