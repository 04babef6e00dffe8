/* mcap — MCAP v0 records (https://mcap.dev/spec): an encoder that builds
 * records into a memory batch for the logger to write, and a reader that
 * walks the records of a file held in memory with bounds checks everywhere.
 *
 * Only the unchunked subset pacd writes is encoded (Header, Schema, Channel,
 * Message, Metadata, DataEnd, Statistics, Metadata Index, Summary Offset,
 * Footer); the reader returns any record and parses the ones pacd uses.
 * All integers are little-endian; strings are uint32 length + bytes (no NUL);
 * maps are uint32 byte length + entries. docs/episode-log.md has the layout.
 *
 * Threading: an mcap_writer_t is used by one thread (the logger's writer
 * thread). The reader functions are pure and reentrant.
 */
#ifndef LOG_MCAP_H
#define LOG_MCAP_H

#include <stddef.h>
#include <stdint.h>

#define MCAP_MAGIC_LEN 8
extern const uint8_t mcap_magic[MCAP_MAGIC_LEN];  /* 0x89 "MCAP" '0' '\r' '\n' (spec, "Magic") */

/* Record opcodes (spec, "Records"). */
enum {
    MCAP_OP_HEADER = 0x01,
    MCAP_OP_FOOTER = 0x02,
    MCAP_OP_SCHEMA = 0x03,
    MCAP_OP_CHANNEL = 0x04,
    MCAP_OP_MESSAGE = 0x05,
    MCAP_OP_CHUNK = 0x06,
    MCAP_OP_MESSAGE_INDEX = 0x07,
    MCAP_OP_CHUNK_INDEX = 0x08,
    MCAP_OP_ATTACHMENT = 0x09,
    MCAP_OP_ATTACHMENT_INDEX = 0x0A,
    MCAP_OP_STATISTICS = 0x0B,
    MCAP_OP_METADATA = 0x0C,
    MCAP_OP_METADATA_INDEX = 0x0D,
    MCAP_OP_SUMMARY_OFFSET = 0x0E,
    MCAP_OP_DATA_END = 0x0F,
};

/* Largest record content the reader accepts as a real (possibly truncated)
 * record: a longer length field is reported as corruption. 1 GiB: far above
 * any pacd record (a frame is at most logger max_frame_bytes). */
#define MCAP_MAX_RECORD_LEN (1ULL << 30)

/* Most channels / schemas an mcap_writer_t tracks for its summary. */
#define MCAP_MAX_CHANNELS 64
#define MCAP_MAX_SCHEMAS 16
#define MCAP_MAX_METADATA 8

/* ------------------------------------------------------------------ */
/* Writer (record encoder; the caller does the I/O)                      */
/* ------------------------------------------------------------------ */

typedef struct mcap_writer mcap_writer_t;

/* An encoder whose batch buffer starts with capacity bytes and grows when a
 * batch needs more (so size it for the largest batch to avoid that). The
 * Schema and Channel records are kept in copies for the summary, so data
 * passed to the add functions may go away after the call. Init-only.
 * Caller owns return value. NULL when memory cannot be had. */
mcap_writer_t *mcap_writer_new(size_t capacity);

/* Free. Sets *self_p to NULL. NULL-safe. Init-only. */
void mcap_writer_destroy(mcap_writer_t **self_p);

/* Forget the previous file (counts, channels, offsets, CRCs, batch) and put
 * the magic and a Header record (profile, library) in the batch. Writer
 * thread. 0 or -ENOMEM (batch cannot grow). */
int mcap_writer_start(mcap_writer_t *self, const char *profile, const char *library);

/* Append a Schema record (id >= 1; encoding e.g. "protobuf"; data = schema
 * bytes) and remember it for the summary. 0, -EINVAL (id 0 / duplicate /
 * table full, MCAP_MAX_SCHEMAS), -ENOMEM. */
int mcap_writer_add_schema(mcap_writer_t *self, uint16_t id, const char *name,
                           const char *encoding, const uint8_t *data, size_t len);

/* Append a Channel record with empty metadata and remember it for the
 * summary. 0, -EINVAL (unknown schema / duplicate id / table full,
 * MCAP_MAX_CHANNELS), -ENOMEM. */
int mcap_writer_add_channel(mcap_writer_t *self, uint16_t id, uint16_t schema_id,
                            const char *topic, const char *message_encoding);

/* Append a Metadata record called name with n key/value string pairs and
 * remember its offset for a Metadata Index. 0, -EINVAL (table full,
 * MCAP_MAX_METADATA), -ENOMEM. */
int mcap_writer_add_metadata(mcap_writer_t *self, const char *name,
                             const char *const *keys, const char *const *values, size_t n);

/* Append a Message record on channel_id. log_time / publish_time in ns
 * (pacd uses CLOCK_REALTIME ns). The per-channel sequence number counts
 * from 0. 0, -EINVAL (unknown channel), -ENOMEM. */
int mcap_writer_add_message(mcap_writer_t *self, uint16_t channel_id, uint64_t log_time,
                            uint64_t publish_time, const uint8_t *data, size_t len);

/* Append DataEnd (with the CRC-32 of every byte from the leading magic up
 * to it), the Summary section (Schemas, Channels, Statistics, Metadata
 * Indexes), Summary Offsets, the Footer (with the summary CRC-32) and the
 * trailing magic. After this only mcap_writer_start is allowed. 0 or -ENOMEM. */
int mcap_writer_finish(mcap_writer_t *self);

/* The batch built since the last mcap_writer_consume: *data, *len. */
void mcap_writer_pending(const mcap_writer_t *self, const uint8_t **data, size_t *len);

/* The caller wrote the whole pending batch: empty it. */
void mcap_writer_consume(mcap_writer_t *self);

/* Bytes of the file so far (written + pending) and messages appended. */
uint64_t mcap_writer_offset(const mcap_writer_t *self);
uint64_t mcap_writer_message_count(const mcap_writer_t *self);
/* 1 if channel id was added since mcap_writer_start. */
int mcap_writer_has_channel(const mcap_writer_t *self, uint16_t id);

/* ------------------------------------------------------------------ */
/* Reader                                                               */
/* ------------------------------------------------------------------ */

/* A view into the file buffer (not NUL-terminated). */
typedef struct {
    const char *ptr;
    uint32_t len;
} mcap_str_t;

typedef struct {
    const uint8_t *ptr;
    size_t len;
} mcap_bytes_t;

typedef struct {
    uint8_t opcode;
    uint64_t offset;      /* of the opcode byte from the start of the file */
    uint64_t length;      /* content length */
    const uint8_t *content;
} mcap_record_t;

typedef enum {
    MCAP_READ_RECORD = 1,     /* *rec filled; the record lies whole inside the buffer */
    MCAP_READ_END = 0,        /* Footer read and the trailing magic ends the buffer */
    MCAP_READ_TRUNCATED = -1, /* the buffer ends at a record boundary or inside a
                                 record/magic with plausible lengths (a crash cut) */
    MCAP_READ_CORRUPT = -2,   /* bad magic, impossible length, bytes after the end */
} mcap_read_status_t;

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
    int state;           /* 0 before magic, 1 records, 2 after footer, 3 done */
    uint64_t error_offset;
    const char *error;   /* static text, why CORRUPT/TRUNCATED */
} mcap_reader_t;

/* Start reading the file bytes data[0, len) (borrowed; must outlive the
 * reader). A plain struct so it costs no allocation. */
void mcap_reader_init(mcap_reader_t *reader, const uint8_t *data, size_t len);

/* Next record. Never reads outside [data, data + len) and never trusts a
 * length: the record must fit in the buffer. Returns an mcap_read_status_t;
 * on TRUNCATED / CORRUPT, reader->error_offset and reader->error say where
 * and why, and every later call returns the same status. Opcodes are not
 * judged here (unknown opcodes are records too). */
mcap_read_status_t mcap_reader_next(mcap_reader_t *reader, mcap_record_t *rec);

/* Record content parsers: 0, or -EBADMSG when the content is too short for
 * its fields or a string/map length overruns it. Views point into the
 * record. */
typedef struct { mcap_str_t profile, library; } mcap_header_t;
typedef struct { uint64_t summary_start, summary_offset_start; uint32_t summary_crc; } mcap_footer_t;
typedef struct { uint16_t id; mcap_str_t name, encoding; mcap_bytes_t data; } mcap_schema_t;
typedef struct {
    uint16_t id, schema_id;
    mcap_str_t topic, message_encoding;
    mcap_bytes_t metadata;          /* raw map: use mcap_map_next */
} mcap_channel_t;
typedef struct {
    uint16_t channel_id;
    uint32_t sequence;
    uint64_t log_time, publish_time;
    mcap_bytes_t data;
} mcap_message_t;
typedef struct { mcap_str_t name; mcap_bytes_t map; } mcap_metadata_t;
typedef struct {
    uint64_t message_count;
    uint16_t schema_count;
    uint32_t channel_count, attachment_count, metadata_count, chunk_count;
    uint64_t message_start_time, message_end_time;
    mcap_bytes_t channel_message_counts;  /* raw map<uint16, uint64> */
} mcap_statistics_t;
typedef struct { uint64_t offset, length; mcap_str_t name; } mcap_metadata_index_t;
typedef struct { uint8_t group_opcode; uint64_t group_start, group_length; } mcap_summary_offset_t;

int mcap_parse_header(const mcap_record_t *rec, mcap_header_t *out);
int mcap_parse_footer(const mcap_record_t *rec, mcap_footer_t *out);
int mcap_parse_schema(const mcap_record_t *rec, mcap_schema_t *out);
int mcap_parse_channel(const mcap_record_t *rec, mcap_channel_t *out);
int mcap_parse_message(const mcap_record_t *rec, mcap_message_t *out);
int mcap_parse_metadata(const mcap_record_t *rec, mcap_metadata_t *out);
int mcap_parse_statistics(const mcap_record_t *rec, mcap_statistics_t *out);
int mcap_parse_metadata_index(const mcap_record_t *rec, mcap_metadata_index_t *out);
int mcap_parse_summary_offset(const mcap_record_t *rec, mcap_summary_offset_t *out);
int mcap_parse_data_end(const mcap_record_t *rec, uint32_t *data_section_crc);

/* Walk a map<string, string> (Channel/Metadata): *pos starts at 0. 1 with
 * *key and *value filled, 0 at the end, -EBADMSG when an entry overruns. */
int mcap_map_next(mcap_bytes_t map, size_t *pos, mcap_str_t *key, mcap_str_t *value);

/* Walk Statistics' map<uint16, uint64>. Same returns as mcap_map_next. */
int mcap_count_map_next(mcap_bytes_t map, size_t *pos, uint16_t *channel_id, uint64_t *count);

/* 1 if s equals the NUL-terminated text. */
int mcap_str_eq(mcap_str_t s, const char *text);

/* CRC-32 (the zlib / ISO-HDLC polynomial MCAP uses) of len bytes, continuing
 * from crc (start with 0). */
uint32_t mcap_crc32(uint32_t crc, const uint8_t *data, size_t len);

#endif
