/* log_reader — reading pacd episode logs (MCAP, docs/episode-log.md): the file
 * into memory, a walk over its messages with each one's topic and kind, the
 * "pacd" metadata record, and the checks of `pacctl log verify`.
 *
 * Everything works on the file bytes held in memory (log_read_file), borrows
 * them (views point into the buffer), never reads outside the buffer and
 * never crashes on any input.
 *
 * Threading: none of these are RT-safe (they read files and allocate); they
 * are for the command-line client, tools and tests. A log_reader_t is used
 * by one thread; the other functions are reentrant.
 */
#ifndef LOG_READER_H
#define LOG_READER_H

#include <stddef.h>
#include <stdint.h>

#include "log_mcap.h"

/* Most channels / schemas the reader and the verifier track per file. */
#define LOG_MAX_CHANNELS 64
#define LOG_MAX_SCHEMAS 64

/* What a channel carries, from its schema name (protobuf pacd.v1.*). */
typedef enum {
    LOG_KIND_OTHER = 0,
    LOG_KIND_STEP,      /* pacd.v1.Step */
    LOG_KIND_FRAME,     /* pacd.v1.CameraFrame */
    LOG_KIND_STATE,     /* pacd.v1.RobotState */
} log_kind_t;

/* The kind of a schema called name (LOG_KIND_OTHER for any other name). */
log_kind_t log_schema_kind(mcap_str_t name);

/* Read the whole file at path into a malloc'd buffer (*data, *len; caller
 * frees). 0, or a negative errno (-EINVAL: not a regular file). */
int log_read_file(const char *path, uint8_t **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Walk over the messages                                               */
/* ------------------------------------------------------------------ */

/* One Message record; views point into the file buffer. */
typedef struct {
    uint16_t channel_id;
    mcap_str_t topic;        /* of its channel ("" when the channel is unknown) */
    log_kind_t kind;         /* of its channel's schema */
    int known_channel;       /* 0: no Channel record defined channel_id before it */
    uint64_t log_time;       /* unix ns */
    uint64_t offset;         /* of the Message record in the file */
    mcap_bytes_t data;       /* the serialised message */
} log_message_t;

/* Flags of log_reader_init. */
enum {
    LOG_READER_DATA_ONLY = 1,  /* end the walk at DataEnd (skip the summary) */
};

typedef struct {
    mcap_reader_t rd;        /* rd.error / rd.error_offset after TRUNCATED / CORRUPT */
    unsigned flags;
    int n_schemas, n_channels;
    struct {
        uint16_t id;
        log_kind_t kind;
    } schemas[LOG_MAX_SCHEMAS];
    struct {
        uint16_t id;
        log_kind_t kind;
        mcap_str_t topic;
    } channels[LOG_MAX_CHANNELS];
} log_reader_t;

/* Start walking the file bytes data[0, len) (borrowed; must outlive the
 * reader). flags: 0 or LOG_READER_DATA_ONLY. A plain struct: no allocation. */
void log_reader_init(log_reader_t *reader, const uint8_t *data, size_t len, unsigned flags);

/* Next Message record: MCAP_READ_RECORD with *msg filled. Schema and Channel
 * records on the way are remembered (the first definition of an id counts;
 * records that do not parse or overflow LOG_MAX_* are skipped), other records
 * and Message records that do not parse are skipped. MCAP_READ_END at the
 * end of the file (or at DataEnd with LOG_READER_DATA_ONLY),
 * MCAP_READ_TRUNCATED / MCAP_READ_CORRUPT as mcap_reader_next. */
mcap_read_status_t log_reader_next(log_reader_t *reader, log_message_t *msg);

/* The first Metadata record called name in data[0, len): 1 with *md filled
 * (views into data; walk md->map with mcap_map_next), 0 when there is none
 * before the end of the readable records. */
int log_find_metadata(const uint8_t *data, size_t len, const char *name, mcap_metadata_t *md);

/* Copy the view s into dst[cap] (cap >= 1), cut to cap - 1 bytes, NUL-terminated. */
void log_str_copy(char *dst, size_t cap, mcap_str_t s);

/* ------------------------------------------------------------------ */
/* Verify (`pacctl log verify`)                                         */
/* ------------------------------------------------------------------ */

typedef enum {
    LOG_VALID = 0,       /* closed cleanly: footer, summary agrees */
    LOG_INCOMPLETE = 1,  /* no footer: cut by a crash; complete records are good */
    LOG_INVALID = 2,     /* corruption; see error / error_offset */
} log_status_t;

typedef struct {
    log_status_t status;
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
    } channels[LOG_MAX_CHANNELS];
} log_report_t;

/* Verify the episode log bytes data[0, len) (see `pacctl log verify` in
 * docs/episode-log.md for every check). Fills *report. Returns
 * report->status. */
log_status_t log_verify_buffer(const uint8_t *data, size_t len, log_report_t *report);

/* Read the file at path and verify it. 0 with *report filled, or a negative
 * errno when the file cannot be read (message in report->error). */
int log_verify_file(const char *path, log_report_t *report);

#endif
