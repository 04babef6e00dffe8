/* log_reader — reading and verifying pacd episode logs (log_reader.h,
 * docs/episode-log.md). */
#include "log_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pacd_proto.h"

log_kind_t log_schema_kind(mcap_str_t name)
{
    return mcap_str_eq(name, "pacd.v1.Step")          ? LOG_KIND_STEP
         : mcap_str_eq(name, "pacd.v1.CameraFrame")   ? LOG_KIND_FRAME
         : mcap_str_eq(name, "pacd.v1.RobotState")    ? LOG_KIND_STATE
                                                      : LOG_KIND_OTHER;
}

void log_str_copy(char *dst, size_t cap, mcap_str_t s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Walk over the messages                                               */
/* ------------------------------------------------------------------ */

void log_reader_init(log_reader_t *reader, const uint8_t *data, size_t len, unsigned flags)
{
    memset(reader, 0, sizeof *reader);
    mcap_reader_init(&reader->rd, data, len);
    reader->flags = flags;
}

static void reader_on_schema(log_reader_t *r, const mcap_record_t *rec)
{
    mcap_schema_t s;
    if (mcap_parse_schema(rec, &s) != 0 || r->n_schemas >= LOG_MAX_SCHEMAS)
        return;
    for (int i = 0; i < r->n_schemas; i++)
        if (r->schemas[i].id == s.id)
            return;
    r->schemas[r->n_schemas].id = s.id;
    r->schemas[r->n_schemas++].kind = log_schema_kind(s.name);
}

static void reader_on_channel(log_reader_t *r, const mcap_record_t *rec)
{
    mcap_channel_t c;
    if (mcap_parse_channel(rec, &c) != 0 || r->n_channels >= LOG_MAX_CHANNELS)
        return;
    for (int i = 0; i < r->n_channels; i++)
        if (r->channels[i].id == c.id)
            return;
    log_kind_t kind = LOG_KIND_OTHER;
    for (int i = 0; i < r->n_schemas; i++)
        if (r->schemas[i].id == c.schema_id)
            kind = r->schemas[i].kind;
    r->channels[r->n_channels].id = c.id;
    r->channels[r->n_channels].kind = kind;
    r->channels[r->n_channels++].topic = c.topic;
}

mcap_read_status_t log_reader_next(log_reader_t *reader, log_message_t *msg)
{
    mcap_record_t rec;
    mcap_read_status_t st;
    while ((st = mcap_reader_next(&reader->rd, &rec)) == MCAP_READ_RECORD) {
        if (rec.opcode == MCAP_OP_DATA_END && (reader->flags & LOG_READER_DATA_ONLY))
            return MCAP_READ_END;
        if (rec.opcode == MCAP_OP_SCHEMA) {
            reader_on_schema(reader, &rec);
        } else if (rec.opcode == MCAP_OP_CHANNEL) {
            reader_on_channel(reader, &rec);
        } else if (rec.opcode == MCAP_OP_MESSAGE) {
            mcap_message_t m;
            if (mcap_parse_message(&rec, &m) != 0)
                continue;
            memset(msg, 0, sizeof *msg);
            msg->channel_id = m.channel_id;
            msg->topic = (mcap_str_t){"", 0};
            for (int i = 0; i < reader->n_channels; i++)
                if (reader->channels[i].id == m.channel_id) {
                    msg->topic = reader->channels[i].topic;
                    msg->kind = reader->channels[i].kind;
                    msg->known_channel = 1;
                }
            msg->log_time = m.log_time;
            msg->offset = rec.offset;
            msg->data = m.data;
            return MCAP_READ_RECORD;
        }
    }
    return st;
}

int log_find_metadata(const uint8_t *data, size_t len, const char *name, mcap_metadata_t *md)
{
    mcap_reader_t rd;
    mcap_reader_init(&rd, data, len);
    mcap_record_t rec;
    while (mcap_reader_next(&rd, &rec) == MCAP_READ_RECORD) {
        if (rec.opcode == MCAP_OP_METADATA && mcap_parse_metadata(&rec, md) == 0 &&
            mcap_str_eq(md->name, name))
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Verify                                                               */
/* ------------------------------------------------------------------ */

typedef struct {
    uint16_t id;
    mcap_str_t name, encoding;
    mcap_bytes_t data;
} schema_t;

typedef struct {
    uint16_t id, schema_id;
    mcap_str_t topic, encoding;
    log_kind_t kind;          /* from the schema name */
} channel_t;

typedef struct {
    const uint8_t *data;
    size_t len;
    log_report_t *rep;
    schema_t schemas[LOG_MAX_SCHEMAS];
    int n_schemas;
    channel_t channels[LOG_MAX_CHANNELS];
    int n_channels;
    uint64_t metadata_offsets[16];
    int n_metadata;
    int have_id;
    int in_summary;           /* after DataEnd */
    int seen_data_end;
    uint64_t summary_first;   /* offset of the first record after DataEnd, 0 if none */
    uint64_t summary_offset_first;
    int have_stats;
    uint64_t step_next;
    int step_after_last;
} verify_t;


__attribute__((format(printf, 3, 4)))
static int bad(verify_t *v, uint64_t offset, const char *fmt, ...)
{
    log_report_t *r = v->rep;
    r->status = LOG_INVALID;
    r->error_offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return -1;
}

static schema_t *find_schema(verify_t *v, uint16_t id)
{
    for (int i = 0; i < v->n_schemas; i++)
        if (v->schemas[i].id == id)
            return &v->schemas[i];
    return NULL;
}

static channel_t *find_channel(verify_t *v, uint16_t id)
{
    for (int i = 0; i < v->n_channels; i++)
        if (v->channels[i].id == id)
            return &v->channels[i];
    return NULL;
}

static int str_same(mcap_str_t a, mcap_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int on_schema(verify_t *v, const mcap_record_t *rec)
{
    mcap_schema_t s;
    if (mcap_parse_schema(rec, &s) != 0)
        return bad(v, rec->offset, "Schema record fields overrun its length");
    if (s.id == 0)
        return bad(v, rec->offset, "Schema record with the reserved id 0");
    schema_t *old = find_schema(v, s.id);
    if (old) {
        if (!str_same(old->name, s.name) || !str_same(old->encoding, s.encoding) ||
            old->data.len != s.data.len || memcmp(old->data.ptr, s.data.ptr, s.data.len) != 0)
            return bad(v, rec->offset, "Schema %u redefined with different content", s.id);
        return 0;
    }
    if (v->in_summary)
        return bad(v, rec->offset, "Schema %u in the summary but not in the data section", s.id);
    if (v->n_schemas >= LOG_MAX_SCHEMAS)
        return bad(v, rec->offset, "more than %d schemas", LOG_MAX_SCHEMAS);
    schema_t *n = &v->schemas[v->n_schemas++];
    n->id = s.id;
    n->name = s.name;
    n->encoding = s.encoding;
    n->data = s.data;
    return 0;
}

static int on_channel(verify_t *v, const mcap_record_t *rec)
{
    mcap_channel_t c;
    if (mcap_parse_channel(rec, &c) != 0)
        return bad(v, rec->offset, "Channel record fields overrun its length");
    schema_t *s = find_schema(v, c.schema_id);
    if (!s)
        return bad(v, rec->offset, "Channel %u refers to schema %u, which is not defined before it",
                   c.id, c.schema_id);
    channel_t *old = find_channel(v, c.id);
    if (old) {
        if (old->schema_id != c.schema_id || !str_same(old->topic, c.topic) ||
            !str_same(old->encoding, c.message_encoding))
            return bad(v, rec->offset, "Channel %u redefined with different content", c.id);
        return 0;
    }
    if (v->in_summary)
        return bad(v, rec->offset, "Channel %u in the summary but not in the data section", c.id);
    if (v->n_channels >= LOG_MAX_CHANNELS)
        return bad(v, rec->offset, "more than %d channels", LOG_MAX_CHANNELS);
    channel_t *n = &v->channels[v->n_channels];
    n->id = c.id;
    n->schema_id = c.schema_id;
    n->topic = c.topic;
    n->encoding = c.message_encoding;
    n->kind = LOG_KIND_OTHER;
    if (mcap_str_eq(s->encoding, "protobuf") && mcap_str_eq(c.message_encoding, "protobuf"))
        n->kind = log_schema_kind(s->name);
    log_report_t *r = v->rep;
    r->channels[v->n_channels].id = c.id;
    log_str_copy(r->channels[v->n_channels].topic, sizeof r->channels[0].topic, c.topic);
    log_str_copy(r->channels[v->n_channels].schema, sizeof r->channels[0].schema, s->name);
    r->channels[v->n_channels].messages = 0;
    v->n_channels++;
    r->n_channels = v->n_channels;
    return 0;
}

static int on_step(verify_t *v, const mcap_record_t *rec, const Pacd__V1__Step *st)
{
    log_report_t *r = v->rep;
    if (v->have_id && strcmp(st->episode_id ? st->episode_id : "", r->episode_id) != 0)
        return bad(v, rec->offset,
                   "step %" PRIu64 " has episode id \"%.64s\", the file's is \"%s\"",
                   st->step, st->episode_id ? st->episode_id : "", r->episode_id);
    if (st->step != v->step_next)
        return bad(v, rec->offset, "step index %" PRIu64 " where %" PRIu64 " was expected "
                   "(indices must count up from 0 without gaps)", st->step, v->step_next);
    if (v->step_after_last)
        return bad(v, rec->offset, "step %" PRIu64 " follows a step marked is_last", st->step);
    if (st->step == 0 && !st->is_first)
        return bad(v, rec->offset, "step 0 is not marked is_first");
    if (st->step != 0 && st->is_first)
        return bad(v, rec->offset, "step %" PRIu64 " is marked is_first (only step 0 may be)",
                   st->step);
    if (st->is_first)
        r->has_first_step = 1;
    r->last_is_last = st->is_last != 0;
    if (st->is_last)
        v->step_after_last = 1;
    r->last_step = st->step;
    r->steps++;
    v->step_next = st->step + 1;
    return 0;
}

static int on_message(verify_t *v, const mcap_record_t *rec)
{
    log_report_t *r = v->rep;
    mcap_message_t m;
    if (mcap_parse_message(rec, &m) != 0)
        return bad(v, rec->offset, "Message record shorter than its header fields");
    channel_t *c = find_channel(v, m.channel_id);
    if (!c)
        return bad(v, rec->offset, "Message on channel %u, which is not defined before it",
                   m.channel_id);
    int ci = (int)(c - v->channels);
    r->channels[ci].messages++;
    if (r->messages == 0 || m.log_time < r->first_time_ns)
        r->first_time_ns = m.log_time;
    if (r->messages == 0 || m.log_time > r->last_time_ns)
        r->last_time_ns = m.log_time;
    r->messages++;
    if (c->kind == LOG_KIND_STEP) {
        Pacd__V1__Step *st = pacd__v1__step__unpack(NULL, m.data.len, m.data.ptr);
        if (!st)
            return bad(v, rec->offset, "Step message %" PRIu64 " does not decode as pacd.v1.Step",
                       r->steps);
        int rc = on_step(v, rec, st);
        pacd__v1__step__free_unpacked(st, NULL);
        return rc;
    }
    if (c->kind == LOG_KIND_FRAME) {
        Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, m.data.len, m.data.ptr);
        if (!f)
            return bad(v, rec->offset, "message on %.*s does not decode as pacd.v1.CameraFrame",
                       (int)c->topic.len, c->topic.ptr);
        pacd__v1__camera_frame__free_unpacked(f, NULL);
    } else if (c->kind == LOG_KIND_STATE) {
        Pacd__V1__RobotState *s = pacd__v1__robot_state__unpack(NULL, m.data.len, m.data.ptr);
        if (!s)
            return bad(v, rec->offset, "message on %.*s does not decode as pacd.v1.RobotState",
                       (int)c->topic.len, c->topic.ptr);
        pacd__v1__robot_state__free_unpacked(s, NULL);
    }
    return 0;
}

static int on_metadata(verify_t *v, const mcap_record_t *rec)
{
    mcap_metadata_t md;
    if (mcap_parse_metadata(rec, &md) != 0)
        return bad(v, rec->offset, "Metadata record fields overrun its length");
    if (v->n_metadata < 16)
        v->metadata_offsets[v->n_metadata++] = rec->offset;
    if (!mcap_str_eq(md.name, "pacd"))
        return 0;
    size_t pos = 0;
    mcap_str_t k, val;
    while (mcap_map_next(md.map, &pos, &k, &val) == 1) {
        if (mcap_str_eq(k, "episode_id")) {
            log_str_copy(v->rep->episode_id, sizeof v->rep->episode_id, val);
            v->have_id = 1;
        }
    }
    return 0;
}

static int on_statistics(verify_t *v, const mcap_record_t *rec)
{
    log_report_t *r = v->rep;
    mcap_statistics_t s;
    if (mcap_parse_statistics(rec, &s) != 0)
        return bad(v, rec->offset, "Statistics record fields overrun its length");
    if (v->have_stats)
        return bad(v, rec->offset, "a second Statistics record");
    v->have_stats = 1;
    if (s.message_count != r->messages)
        return bad(v, rec->offset,
                   "Statistics counts %" PRIu64 " messages, the data section has %" PRIu64,
                   s.message_count, r->messages);
    if (s.schema_count != v->n_schemas || s.channel_count != (uint32_t)v->n_channels)
        return bad(v, rec->offset,
                   "Statistics counts %u schemas and %u channels, the data section has %d and %d",
                   s.schema_count, s.channel_count, v->n_schemas, v->n_channels);
    if (s.metadata_count != (uint32_t)v->n_metadata || s.chunk_count != 0 ||
        s.attachment_count != 0)
        return bad(v, rec->offset,
                   "Statistics metadata/chunk/attachment counts disagree with the data section");
    if (r->messages &&
        (s.message_start_time != r->first_time_ns || s.message_end_time != r->last_time_ns))
        return bad(v, rec->offset, "Statistics time range disagrees with the messages");
    size_t pos = 0;
    uint16_t id;
    uint64_t n;
    int rc;
    while ((rc = mcap_count_map_next(s.channel_message_counts, &pos, &id, &n)) == 1) {
        channel_t *c = find_channel(v, id);
        if (!c || r->channels[c - v->channels].messages != n)
            return bad(v, rec->offset,
                       "Statistics counts %" PRIu64 " messages on channel %u, the data disagrees",
                       n, id);
    }
    if (rc < 0)
        return bad(v, rec->offset, "Statistics channel message counts overrun the record");
    return 0;
}

static int on_data_end(verify_t *v, const mcap_record_t *rec)
{
    uint32_t crc;
    if (mcap_parse_data_end(rec, &crc) != 0)
        return bad(v, rec->offset, "DataEnd record too short");
    if (crc != 0 && mcap_crc32(0, v->data, (size_t)rec->offset) != crc)
        return bad(v, rec->offset,
                   "data section CRC-32 mismatch: the bytes before this offset are damaged");
    v->in_summary = 1;
    v->seen_data_end = 1;
    return 0;
}

static int on_footer(verify_t *v, const mcap_record_t *rec)
{
    mcap_footer_t f;
    if (mcap_parse_footer(rec, &f) != 0)
        return bad(v, rec->offset, "Footer record too short");
    if (!v->seen_data_end)
        return bad(v, rec->offset, "Footer without a DataEnd record before it");
    if (f.summary_start != 0 && f.summary_start != v->summary_first)
        return bad(v, rec->offset,
                   "Footer summary_start %" PRIu64 " is not where the summary starts (%" PRIu64 ")",
                   f.summary_start, v->summary_first);
    if (f.summary_offset_start != 0 && f.summary_offset_start != v->summary_offset_first)
        return bad(v, rec->offset,
                   "Footer summary_offset_start %" PRIu64 " is not where the summary offsets start",
                   f.summary_offset_start);
    if (f.summary_crc != 0 && f.summary_start != 0 && rec->length >= 16) {
        size_t end = (size_t)rec->offset + 1 + 8 + 16;
        uint32_t crc = mcap_crc32(0, v->data + f.summary_start, end - (size_t)f.summary_start);
        if (crc != f.summary_crc)
            return bad(v, rec->offset, "summary CRC-32 mismatch: the summary section is damaged");
    }
    v->rep->has_summary = v->have_stats;
    return 0;
}

static int on_record(verify_t *v, const mcap_record_t *rec)
{
    log_report_t *r = v->rep;
    if (r->records == 0) {
        mcap_header_t h;
        if (rec->opcode != MCAP_OP_HEADER)
            return bad(v, rec->offset, "first record is opcode 0x%02x, not a Header", rec->opcode);
        if (mcap_parse_header(rec, &h) != 0)
            return bad(v, rec->offset, "Header record fields overrun its length");
        log_str_copy(r->library, sizeof r->library, h.library);
        return 0;
    }
    if (v->in_summary && v->summary_first == 0 && rec->opcode != MCAP_OP_FOOTER)
        v->summary_first = rec->offset;
    switch (rec->opcode) {
    case MCAP_OP_SCHEMA:
        return on_schema(v, rec);
    case MCAP_OP_CHANNEL:
        return on_channel(v, rec);
    case MCAP_OP_MESSAGE:
        if (v->in_summary)
            return bad(v, rec->offset, "Message record after DataEnd");
        return on_message(v, rec);
    case MCAP_OP_METADATA:
        if (v->in_summary)
            return bad(v, rec->offset, "Metadata record after DataEnd");
        return on_metadata(v, rec);
    case MCAP_OP_DATA_END:
        if (v->in_summary)
            return bad(v, rec->offset, "a second DataEnd record");
        return on_data_end(v, rec);
    case MCAP_OP_STATISTICS:
        if (!v->in_summary)
            return bad(v, rec->offset, "Statistics record before DataEnd");
        return on_statistics(v, rec);
    case MCAP_OP_METADATA_INDEX: {
        mcap_metadata_index_t mi;
        if (!v->in_summary || mcap_parse_metadata_index(rec, &mi) != 0)
            return bad(v, rec->offset, "bad Metadata Index record");
        for (int i = 0; i < v->n_metadata; i++)
            if (v->metadata_offsets[i] == mi.offset)
                return 0;
        return bad(v, rec->offset,
                   "Metadata Index points at %" PRIu64 ", where no Metadata record is", mi.offset);
    }
    case MCAP_OP_SUMMARY_OFFSET: {
        mcap_summary_offset_t so;
        if (!v->in_summary || mcap_parse_summary_offset(rec, &so) != 0)
            return bad(v, rec->offset, "bad Summary Offset record");
        if (so.group_start > v->len || so.group_length > v->len - so.group_start)
            return bad(v, rec->offset, "Summary Offset group lies outside the file");
        if (v->summary_offset_first == 0)
            v->summary_offset_first = rec->offset;
        return 0;
    }
    case MCAP_OP_FOOTER:
        return on_footer(v, rec);
    case MCAP_OP_HEADER:
        return bad(v, rec->offset, "a second Header record");
    default:
        return bad(v, rec->offset,
                   "unexpected record opcode 0x%02x (pacd logs hold no such records)",
                   rec->opcode);
    }
}

log_status_t log_verify_buffer(const uint8_t *data, size_t len, log_report_t *report)
{
    memset(report, 0, sizeof *report);
    verify_t *v = calloc(1, sizeof *v);
    if (!v) {
        report->status = LOG_INVALID;
        snprintf(report->error, sizeof report->error, "out of memory");
        return report->status;
    }
    v->data = data;
    v->len = len;
    v->rep = report;
    mcap_reader_t rd;
    mcap_reader_init(&rd, data, len);
    mcap_record_t rec;
    mcap_read_status_t st;
    while ((st = mcap_reader_next(&rd, &rec)) == MCAP_READ_RECORD) {
        if (on_record(v, &rec) != 0)
            break;
        report->records++;
    }
    if (report->status == LOG_INVALID) {
        /* set by a record check */
    } else if (st == MCAP_READ_END) {
        report->closed = 1;
        report->status = LOG_VALID;
        if (report->steps > 0 && !report->last_is_last) {
            report->status = LOG_INVALID;
            report->error_offset = len;
            snprintf(report->error, sizeof report->error,
                     "the file was closed but its final step %" PRIu64 " is not marked is_last",
                     report->last_step);
        }
    } else if (st == MCAP_READ_TRUNCATED) {
        report->status = LOG_INCOMPLETE;
        report->error_offset = rd.error_offset;
        report->trailing_bytes = len - rd.error_offset;
        snprintf(report->error, sizeof report->error, "%s", rd.error);
    } else {
        report->status = LOG_INVALID;
        report->error_offset = rd.error_offset;
        snprintf(report->error, sizeof report->error, "%s", rd.error);
    }
    free(v);
    return report->status;
}

int log_read_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno ? errno : EINVAL;
        close(fd);
        return S_ISREG(st.st_mode) ? -e : -EINVAL;
    }
    size_t cap = (size_t)st.st_size + 1;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *data = buf;
    *len = n;
    return 0;
}

int log_verify_file(const char *path, log_report_t *report)
{
    uint8_t *data;
    size_t len;
    int rc = log_read_file(path, &data, &len);
    if (rc != 0) {
        memset(report, 0, sizeof *report);
        report->status = LOG_INVALID;
        snprintf(report->error, sizeof report->error, "cannot read %s: %s", path,
                 rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return rc;
    }
    log_verify_buffer(data, len, report);
    free(data);
    return 0;
}

