/* pacctl_log — `pacctl log verify|cat`: check and print pacd episode logs
 * (MCAP, docs/episode-log.md) with pacd's own reader (daemon/pacd_mcap.h).
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

typedef enum {
    PACCTL_LOG_VALID = 0,       /* closed cleanly: footer, summary agrees */
    PACCTL_LOG_INCOMPLETE = 1,  /* no footer: cut by a crash; complete records are good */
    PACCTL_LOG_INVALID = 2,     /* corruption; see error / error_offset */
} pacctl_log_status_t;

#define PACCTL_LOG_MAX_CHANNELS 64

typedef struct {
    pacctl_log_status_t status;
    int closed;                   /* footer and trailing magic present */
    int has_summary;              /* a summary section was read and checked */
    uint64_t records;             /* complete records read (magic not counted) */
    uint64_t messages;
    uint64_t steps;               /* pacd.v1.Step messages */
    int has_first_step, last_is_last;
    uint64_t last_step;           /* index of the final step, when steps > 0 */
    uint64_t first_time_ns, last_time_ns;  /* message log_time range (unix ns) */
    uint64_t trailing_bytes;      /* bytes after the last complete record (unfinished files) */
    uint64_t error_offset;        /* byte offset of the bad record (INVALID) or of the cut */
    char error[256];              /* what is wrong; "" when VALID */
    char episode_id[64];          /* from the "pacd" metadata record */
    char library[64];             /* Header library, e.g. "pacd 0.1.0" */
    int n_channels;
    struct {
        uint16_t id;
        char topic[128];
        char schema[64];
        uint64_t messages;
    } channels[PACCTL_LOG_MAX_CHANNELS];
} pacctl_log_report_t;

/* Verify the episode log bytes data[0, len) (see `pacctl log verify` in
 * docs/episode-log.md for every check). Fills *report. Never reads outside
 * the buffer and never crashes on any input. Returns report->status. */
pacctl_log_status_t pacctl_log_verify_buffer(const uint8_t *data, size_t len,
                                             pacctl_log_report_t *report);

/* Read the file at path and verify it. 0 with *report filled, or a negative
 * errno when the file cannot be read (message in report->error). */
int pacctl_log_verify_file(const char *path, pacctl_log_report_t *report);

/* `pacctl log cat` over the episode log bytes data[0, len) (borrowed): print
 * each message of `topic` as one JSON line to out, problems to errs (path
 * names the file in them). Never reads outside the buffer and never crashes
 * on any input. Returns an exit code: PACCTL_LOG_OK (also for an unfinished
 * file, which gets a note on errs) or PACCTL_LOG_CORRUPT. */
int pacctl_log_cat_buffer(const uint8_t *data, size_t len, const char *path, const char *topic,
                          FILE *out, FILE *errs);

/* Read the whole file at path into a malloc'd buffer (*data, *len; caller
 * frees). 0, or a negative errno (-EINVAL: not a regular file). */
int pacctl_log_read_file(const char *path, uint8_t **data, size_t *len);

/* `pacctl log ...` with argv[0] == "log":
 *   log verify [--json] [--strict] FILE
 *   log cat [--topic TOPIC] FILE     (default topic /pacd/step; one JSON object per line)
 * Prints to stdout (errors to stderr). Returns an exit code (PACCTL_LOG_OK ...). */
int pacctl_log_main(int argc, char **argv);

#endif
