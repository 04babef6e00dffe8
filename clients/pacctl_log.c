/* pacctl_log — `pacctl log verify|cat` (pacctl_log.h, docs/episode-log.md). */
#include "pacctl_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log_mcap.h"
#include "pacd_proto.h"

#define MAX_SCHEMAS 64

typedef struct {
    uint16_t id;
    mcap_str_t name, encoding;
    mcap_bytes_t data;
} schema_t;

typedef struct {
    uint16_t id, schema_id;
    mcap_str_t topic, encoding;
    int kind;                 /* KIND_* from the schema name */
} channel_t;

enum { KIND_OTHER = 0, KIND_STEP, KIND_FRAME, KIND_STATE };

typedef struct {
    const uint8_t *data;
    size_t len;
    pacctl_log_report_t *rep;
    schema_t schemas[MAX_SCHEMAS];
    int n_schemas;
    channel_t channels[PACCTL_LOG_MAX_CHANNELS];
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

static void copy_str(char *dst, size_t cap, mcap_str_t s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

__attribute__((format(printf, 3, 4)))
static int bad(verify_t *v, uint64_t offset, const char *fmt, ...)
{
    pacctl_log_report_t *r = v->rep;
    r->status = PACCTL_LOG_INVALID;
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
    if (v->n_schemas >= MAX_SCHEMAS)
        return bad(v, rec->offset, "more than %d schemas", MAX_SCHEMAS);
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
    if (v->n_channels >= PACCTL_LOG_MAX_CHANNELS)
        return bad(v, rec->offset, "more than %d channels", PACCTL_LOG_MAX_CHANNELS);
    channel_t *n = &v->channels[v->n_channels];
    n->id = c.id;
    n->schema_id = c.schema_id;
    n->topic = c.topic;
    n->encoding = c.message_encoding;
    n->kind = KIND_OTHER;
    if (mcap_str_eq(s->encoding, "protobuf") && mcap_str_eq(c.message_encoding, "protobuf")) {
        if (mcap_str_eq(s->name, "pacd.v1.Step"))
            n->kind = KIND_STEP;
        else if (mcap_str_eq(s->name, "pacd.v1.CameraFrame"))
            n->kind = KIND_FRAME;
        else if (mcap_str_eq(s->name, "pacd.v1.RobotState"))
            n->kind = KIND_STATE;
    }
    pacctl_log_report_t *r = v->rep;
    r->channels[v->n_channels].id = c.id;
    copy_str(r->channels[v->n_channels].topic, sizeof r->channels[0].topic, c.topic);
    copy_str(r->channels[v->n_channels].schema, sizeof r->channels[0].schema, s->name);
    r->channels[v->n_channels].messages = 0;
    v->n_channels++;
    r->n_channels = v->n_channels;
    return 0;
}

static int on_step(verify_t *v, const mcap_record_t *rec, const Pacd__V1__Step *st)
{
    pacctl_log_report_t *r = v->rep;
    if (v->have_id && strcmp(st->episode_id ? st->episode_id : "", r->episode_id) != 0)
        return bad(v, rec->offset, "step %" PRIu64 " has episode id \"%.64s\", the file's is \"%s\"",
                   st->step, st->episode_id ? st->episode_id : "", r->episode_id);
    if (st->step != v->step_next)
        return bad(v, rec->offset, "step index %" PRIu64 " where %" PRIu64 " was expected "
                   "(indices must count up from 0 without gaps)", st->step, v->step_next);
    if (v->step_after_last)
        return bad(v, rec->offset, "step %" PRIu64 " follows a step marked is_last", st->step);
    if (st->step == 0 && !st->is_first)
        return bad(v, rec->offset, "step 0 is not marked is_first");
    if (st->step != 0 && st->is_first)
        return bad(v, rec->offset, "step %" PRIu64 " is marked is_first (only step 0 may be)", st->step);
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
    pacctl_log_report_t *r = v->rep;
    mcap_message_t m;
    if (mcap_parse_message(rec, &m) != 0)
        return bad(v, rec->offset, "Message record shorter than its header fields");
    channel_t *c = find_channel(v, m.channel_id);
    if (!c)
        return bad(v, rec->offset, "Message on channel %u, which is not defined before it", m.channel_id);
    int ci = (int)(c - v->channels);
    r->channels[ci].messages++;
    if (r->messages == 0 || m.log_time < r->first_time_ns)
        r->first_time_ns = m.log_time;
    if (r->messages == 0 || m.log_time > r->last_time_ns)
        r->last_time_ns = m.log_time;
    r->messages++;
    if (c->kind == KIND_STEP) {
        Pacd__V1__Step *st = pacd__v1__step__unpack(NULL, m.data.len, m.data.ptr);
        if (!st)
            return bad(v, rec->offset, "Step message %" PRIu64 " does not decode as pacd.v1.Step",
                       r->steps);
        int rc = on_step(v, rec, st);
        pacd__v1__step__free_unpacked(st, NULL);
        return rc;
    }
    if (c->kind == KIND_FRAME) {
        Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, m.data.len, m.data.ptr);
        if (!f)
            return bad(v, rec->offset, "message on %.*s does not decode as pacd.v1.CameraFrame",
                       (int)c->topic.len, c->topic.ptr);
        pacd__v1__camera_frame__free_unpacked(f, NULL);
    } else if (c->kind == KIND_STATE) {
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
            copy_str(v->rep->episode_id, sizeof v->rep->episode_id, val);
            v->have_id = 1;
        }
    }
    return 0;
}

static int on_statistics(verify_t *v, const mcap_record_t *rec)
{
    pacctl_log_report_t *r = v->rep;
    mcap_statistics_t s;
    if (mcap_parse_statistics(rec, &s) != 0)
        return bad(v, rec->offset, "Statistics record fields overrun its length");
    if (v->have_stats)
        return bad(v, rec->offset, "a second Statistics record");
    v->have_stats = 1;
    if (s.message_count != r->messages)
        return bad(v, rec->offset, "Statistics counts %" PRIu64 " messages, the data section has %" PRIu64,
                   s.message_count, r->messages);
    if (s.schema_count != v->n_schemas || s.channel_count != (uint32_t)v->n_channels)
        return bad(v, rec->offset, "Statistics counts %u schemas and %u channels, the data section has %d and %d",
                   s.schema_count, s.channel_count, v->n_schemas, v->n_channels);
    if (s.metadata_count != (uint32_t)v->n_metadata || s.chunk_count != 0 || s.attachment_count != 0)
        return bad(v, rec->offset, "Statistics metadata/chunk/attachment counts disagree with the data section");
    if (r->messages && (s.message_start_time != r->first_time_ns || s.message_end_time != r->last_time_ns))
        return bad(v, rec->offset, "Statistics time range disagrees with the messages");
    size_t pos = 0;
    uint16_t id;
    uint64_t n;
    int rc;
    while ((rc = mcap_count_map_next(s.channel_message_counts, &pos, &id, &n)) == 1) {
        channel_t *c = find_channel(v, id);
        if (!c || r->channels[c - v->channels].messages != n)
            return bad(v, rec->offset, "Statistics counts %" PRIu64 " messages on channel %u, the data disagrees",
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
        return bad(v, rec->offset, "data section CRC-32 mismatch: the bytes before this offset are damaged");
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
        return bad(v, rec->offset, "Footer summary_start %" PRIu64 " is not where the summary starts (%" PRIu64 ")",
                   f.summary_start, v->summary_first);
    if (f.summary_offset_start != 0 && f.summary_offset_start != v->summary_offset_first)
        return bad(v, rec->offset, "Footer summary_offset_start %" PRIu64 " is not where the summary offsets start",
                   f.summary_offset_start);
    if (f.summary_crc != 0 && f.summary_start != 0 && rec->length >= 16) {
        size_t end = (size_t)rec->offset + 1 + 8 + 16;
        if (mcap_crc32(0, v->data + f.summary_start, end - (size_t)f.summary_start) != f.summary_crc)
            return bad(v, rec->offset, "summary CRC-32 mismatch: the summary section is damaged");
    }
    v->rep->has_summary = v->have_stats;
    return 0;
}

static int on_record(verify_t *v, const mcap_record_t *rec)
{
    pacctl_log_report_t *r = v->rep;
    if (r->records == 0) {
        mcap_header_t h;
        if (rec->opcode != MCAP_OP_HEADER)
            return bad(v, rec->offset, "first record is opcode 0x%02x, not a Header", rec->opcode);
        if (mcap_parse_header(rec, &h) != 0)
            return bad(v, rec->offset, "Header record fields overrun its length");
        copy_str(r->library, sizeof r->library, h.library);
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
        return bad(v, rec->offset, "Metadata Index points at %" PRIu64 ", where no Metadata record is", mi.offset);
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
        return bad(v, rec->offset, "unexpected record opcode 0x%02x (pacd logs hold no such records)",
                   rec->opcode);
    }
}

pacctl_log_status_t pacctl_log_verify_buffer(const uint8_t *data, size_t len,
                                             pacctl_log_report_t *report)
{
    memset(report, 0, sizeof *report);
    verify_t *v = calloc(1, sizeof *v);
    if (!v) {
        report->status = PACCTL_LOG_INVALID;
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
    if (report->status == PACCTL_LOG_INVALID) {
        /* set by a record check */
    } else if (st == MCAP_READ_END) {
        report->closed = 1;
        report->status = PACCTL_LOG_VALID;
        if (report->steps > 0 && !report->last_is_last) {
            report->status = PACCTL_LOG_INVALID;
            report->error_offset = len;
            snprintf(report->error, sizeof report->error,
                     "the file was closed but its final step %" PRIu64 " is not marked is_last",
                     report->last_step);
        }
    } else if (st == MCAP_READ_TRUNCATED) {
        report->status = PACCTL_LOG_INCOMPLETE;
        report->error_offset = rd.error_offset;
        report->trailing_bytes = len - rd.error_offset;
        snprintf(report->error, sizeof report->error, "%s", rd.error);
    } else {
        report->status = PACCTL_LOG_INVALID;
        report->error_offset = rd.error_offset;
        snprintf(report->error, sizeof report->error, "%s", rd.error);
    }
    free(v);
    return report->status;
}

int pacctl_log_read_file(const char *path, uint8_t **data, size_t *len)
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

int pacctl_log_verify_file(const char *path, pacctl_log_report_t *report)
{
    uint8_t *data;
    size_t len;
    int rc = pacctl_log_read_file(path, &data, &len);
    if (rc != 0) {
        memset(report, 0, sizeof *report);
        report->status = PACCTL_LOG_INVALID;
        snprintf(report->error, sizeof report->error, "cannot read %s: %s", path,
                 rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return rc;
    }
    pacctl_log_verify_buffer(data, len, report);
    free(data);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Command line                                                         */
/* ------------------------------------------------------------------ */

static const char *status_name(pacctl_log_status_t s)
{
    return s == PACCTL_LOG_VALID ? "ok" : s == PACCTL_LOG_INCOMPLETE ? "unfinished" : "corrupt";
}

static void format_time(uint64_t ns, char *out, size_t cap)
{
    time_t secs = (time_t)(ns / 1000000000ULL);
    struct tm tm;
    if (!gmtime_r(&secs, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, cap, "?");
        return;
    }
    size_t n = strlen(out);
    snprintf(out + n, cap - n, ".%03uZ", (unsigned)((ns / 1000000ULL) % 1000ULL));
}

static void print_report_text(const char *path, const pacctl_log_report_t *r)
{
    switch (r->status) {
    case PACCTL_LOG_VALID:
        printf("%s: ok, closed cleanly\n", path);
        break;
    case PACCTL_LOG_INCOMPLETE:
        printf("%s: unfinished: %" PRIu64 " complete records recovered (%s at byte %" PRIu64
               "; %" PRIu64 " trailing bytes ignored)\n",
               path, r->records, r->error, r->error_offset, r->trailing_bytes);
        break;
    default:
        printf("%s: CORRUPT at byte %" PRIu64 ": %s (%" PRIu64 " good records before it)\n", path,
               r->error_offset, r->error, r->records);
        break;
    }
    printf("  episode_id: %s\n", r->episode_id[0] ? r->episode_id : "(none)");
    printf("  writer:     %s\n", r->library[0] ? r->library : "(unknown)");
    printf("  records:    %" PRIu64 "\n", r->records);
    printf("  messages:   %" PRIu64 "\n", r->messages);
    if (r->steps)
        printf("  steps:      %" PRIu64 " (0..%" PRIu64 ")%s%s\n", r->steps, r->last_step,
               r->has_first_step ? ", is_first at 0" : "", r->last_is_last ? ", is_last at the end" : "");
    else
        printf("  steps:      0\n");
    if (r->messages) {
        char a[64], b[64];
        format_time(r->first_time_ns, a, sizeof a);
        format_time(r->last_time_ns, b, sizeof b);
        printf("  first_time: %s (%" PRIu64 " ns)\n", a, r->first_time_ns);
        printf("  last_time:  %s (%" PRIu64 " ns)\n", b, r->last_time_ns);
    }
    printf("  summary:    %s\n", r->has_summary ? "present, agrees with the data" : "absent");
    printf("  channels:\n");
    for (int i = 0; i < r->n_channels; i++)
        printf("    %-28s %-22s %" PRIu64 " messages\n", r->channels[i].topic, r->channels[i].schema,
               r->channels[i].messages);
}

static void print_report_json(const char *path, const pacctl_log_report_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "status", json_string(status_name(r->status)));
    json_object_set_new(o, "closed", json_boolean(r->closed));
    json_object_set_new(o, "has_summary", json_boolean(r->has_summary));
    json_object_set_new(o, "episode_id", json_string(r->episode_id));
    json_object_set_new(o, "library", json_string(r->library));
    json_object_set_new(o, "records", json_integer((json_int_t)r->records));
    json_object_set_new(o, "messages", json_integer((json_int_t)r->messages));
    json_object_set_new(o, "steps", json_integer((json_int_t)r->steps));
    json_object_set_new(o, "last_step_is_last", json_boolean(r->last_is_last));
    json_object_set_new(o, "first_time_unix_ns", json_integer((json_int_t)r->first_time_ns));
    json_object_set_new(o, "last_time_unix_ns", json_integer((json_int_t)r->last_time_ns));
    json_object_set_new(o, "trailing_bytes", json_integer((json_int_t)r->trailing_bytes));
    if (r->status == PACCTL_LOG_VALID) {
        json_object_set_new(o, "error", json_null());
    } else {
        json_object_set_new(o, "error", json_pack("{s:I, s:s}", "offset", (json_int_t)r->error_offset,
                                                  "reason", r->error));
    }
    json_t *ch = json_array();
    for (int i = 0; i < r->n_channels; i++)
        json_array_append_new(ch, json_pack("{s:i, s:s, s:s, s:I}", "id", r->channels[i].id, "topic",
                                            r->channels[i].topic, "schema", r->channels[i].schema,
                                            "messages", (json_int_t)r->channels[i].messages));
    json_object_set_new(o, "channels", ch);
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("\n");
    json_decref(o);
}

static int cmd_verify(int argc, char **argv)
{
    int as_json = 0, strict = 0;
    const char *path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (strcmp(argv[i], "--strict") == 0)
            strict = 1;
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "pacctl log verify: unexpected argument '%s'; usage: pacctl log verify [--json] [--strict] FILE\n",
                    argv[i]);
            return PACCTL_LOG_USAGE;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "pacctl log verify: no file given; usage: pacctl log verify [--json] [--strict] FILE\n");
        return PACCTL_LOG_USAGE;
    }
    pacctl_log_report_t *r = malloc(sizeof *r);
    if (!r)
        return PACCTL_LOG_USAGE;
    if (pacctl_log_verify_file(path, r) != 0) {
        fprintf(stderr, "pacctl log verify: %s\n", r->error);
        free(r);
        return PACCTL_LOG_USAGE;
    }
    if (as_json)
        print_report_json(path, r);
    else
        print_report_text(path, r);
    int code = r->status == PACCTL_LOG_VALID ? PACCTL_LOG_OK
             : r->status == PACCTL_LOG_INCOMPLETE ? (strict ? PACCTL_LOG_UNFINISHED : PACCTL_LOG_OK)
             : PACCTL_LOG_CORRUPT;
    free(r);
    return code;
}

static json_t *jfloat(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *jfloats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jfloat(v[i]));
    return a;
}

static json_t *jdoubles(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jfloat(v[i]));
    return a;
}

static json_t *step_json(const Pacd__V1__Step *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "episode_id", json_string(s->episode_id ? s->episode_id : ""));
    json_object_set_new(o, "step", json_integer((json_int_t)s->step));
    json_t *obs = json_object(), *shapes = json_object();
    for (size_t i = 0; i < s->n_observation; i++) {
        const Pacd__V1__Tensor *t = s->observation[i];
        const char *name = t->name ? t->name : "";
        json_object_set_new(obs, name, jfloats(t->values, t->n_values));
        json_t *sh = json_array();
        for (size_t d = 0; d < t->n_shape; d++)
            json_array_append_new(sh, json_integer(t->shape[d]));
        json_object_set_new(shapes, name, sh);
    }
    json_object_set_new(o, "observation", obs);
    json_object_set_new(o, "observation_shape", shapes);
    json_object_set_new(o, "policy_action", jfloats(s->policy_action, s->n_policy_action));
    if (s->action) {
        json_object_set_new(o, "action", jfloats(s->action->values, s->action->n_values));
        json_object_set_new(o, "action_space", json_integer(s->action->space));
    } else {
        json_object_set_new(o, "action", json_array());
        json_object_set_new(o, "action_space", json_integer(0));
    }
    json_object_set_new(o, "reward", jfloat(s->reward));
    json_object_set_new(o, "discount", jfloat(s->discount));
    json_object_set_new(o, "is_first", json_boolean(s->is_first));
    json_object_set_new(o, "is_last", json_boolean(s->is_last));
    json_object_set_new(o, "is_terminal", json_boolean(s->is_terminal));
    json_object_set_new(o, "stale", json_boolean(s->stale));
    json_object_set_new(o, "held", json_boolean(s->held));
    json_object_set_new(o, "safety_flags", json_integer(s->safety_flags));
    json_t *frames = json_array();
    for (size_t i = 0; i < s->n_frames; i++) {
        const Pacd__V1__FrameRef *f = s->frames[i];
        json_array_append_new(frames, json_pack("{s:s, s:I, s:I, s:I}", "camera", f->camera ? f->camera : "",
                                                "seq", (json_int_t)f->seq, "capture_time_unix_ns",
                                                (json_int_t)f->capture_time_unix_ns, "age_us",
                                                (json_int_t)f->age_us));
    }
    json_object_set_new(o, "frames", frames);
    json_object_set_new(o, "tick_mono_ns", json_integer(s->tick_mono_ns));
    json_object_set_new(o, "time_unix_ns", json_integer(s->time_unix_ns));
    json_object_set_new(o, "inference_us", json_integer(s->inference_us));
    json_object_set_new(o, "robot_state_seq", json_integer((json_int_t)s->robot_state_seq));
    if (s->has_q_value)
        json_object_set_new(o, "q_value", jfloat(s->q_value));
    if (s->n_teleop_action) {
        json_object_set_new(o, "teleop_action", jfloats(s->teleop_action, s->n_teleop_action));
        json_object_set_new(o, "teleop_action_seq", json_integer((json_int_t)s->teleop_action_seq));
    }
    if (s->shadow)
        json_object_set_new(o, "shadow", json_true());
    if (s->n_task_info) {
        json_t *ti = json_object();
        for (size_t i = 0; i < s->n_task_info; i++)
            if (s->task_info[i]->name)
                json_object_set_new(ti, s->task_info[i]->name, jfloat(s->task_info[i]->value));
        json_object_set_new(o, "task_info", ti);
    }
    return o;
}

static json_t *frame_json(const Pacd__V1__CameraFrame *f)
{
    return json_pack("{s:s, s:i, s:i, s:i, s:I, s:I, s:I}", "camera", f->camera ? f->camera : "",
                     "width", (int)f->width, "height", (int)f->height, "encoding", (int)f->encoding,
                     "data_bytes", (json_int_t)f->data.len, "capture_time_unix_ns",
                     (json_int_t)f->capture_time_unix_ns, "seq", (json_int_t)f->seq);
}

static json_t *state_json(const Pacd__V1__RobotState *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "robot", json_string(s->robot ? s->robot : ""));
    json_object_set_new(o, "joint_positions", jdoubles(s->joint_positions, s->n_joint_positions));
    json_object_set_new(o, "joint_velocities", jdoubles(s->joint_velocities, s->n_joint_velocities));
    json_object_set_new(o, "gripper_position", jfloat(s->gripper_position));
    json_object_set_new(o, "gripper_velocity", jfloat(s->gripper_velocity));
    json_object_set_new(o, "grasp", json_boolean(s->grasp));
    if (s->end_effector) {
        const Pacd__V1__Pose *p = s->end_effector;
        double pose[7] = {p->x, p->y, p->z, p->qw, p->qx, p->qy, p->qz};
        json_object_set_new(o, "end_effector", jdoubles(pose, 7));
    }
    json_object_set_new(o, "time_unix_ns", json_integer(s->time_unix_ns));
    json_object_set_new(o, "seq", json_integer((json_int_t)s->seq));
    return o;
}

static int cmd_cat(int argc, char **argv)
{
    const char *path = NULL, *topic = "/pacd/step";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            topic = argv[++i];
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "pacctl log cat: unexpected argument '%s'; usage: pacctl log cat [--topic TOPIC] FILE\n",
                    argv[i]);
            return PACCTL_LOG_USAGE;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "pacctl log cat: no file given; usage: pacctl log cat [--topic TOPIC] FILE\n");
        return PACCTL_LOG_USAGE;
    }
    uint8_t *data;
    size_t len;
    int rc = pacctl_log_read_file(path, &data, &len);
    if (rc != 0) {
        fprintf(stderr, "pacctl log cat: cannot read %s: %s\n", path, strerror(-rc));
        return PACCTL_LOG_USAGE;
    }
    int code = pacctl_log_cat_buffer(data, len, path, topic, stdout, stderr);
    free(data);
    return code;
}

int pacctl_log_cat_buffer(const uint8_t *data, size_t len, const char *path, const char *topic,
                          FILE *out, FILE *errs)
{
    /* channels of the requested topic and their kinds */
    struct { uint16_t id; int kind; } chans[PACCTL_LOG_MAX_CHANNELS];
    int n_chans = 0;
    mcap_str_t schema_names[MAX_SCHEMAS];
    uint16_t schema_ids[MAX_SCHEMAS];
    int n_schemas = 0;

    mcap_reader_t rd;
    mcap_reader_init(&rd, data, len);
    mcap_record_t rec;
    mcap_read_status_t st;
    int code = PACCTL_LOG_OK;
    while ((st = mcap_reader_next(&rd, &rec)) == MCAP_READ_RECORD) {
        if (rec.opcode == MCAP_OP_SCHEMA) {
            mcap_schema_t s;
            if (mcap_parse_schema(&rec, &s) == 0 && n_schemas < MAX_SCHEMAS) {
                schema_ids[n_schemas] = s.id;
                schema_names[n_schemas++] = s.name;
            }
        } else if (rec.opcode == MCAP_OP_CHANNEL) {
            mcap_channel_t c;
            if (mcap_parse_channel(&rec, &c) != 0 || !mcap_str_eq(c.topic, topic) ||
                n_chans >= PACCTL_LOG_MAX_CHANNELS)
                continue;
            int kind = KIND_OTHER;
            for (int i = 0; i < n_schemas; i++) {
                if (schema_ids[i] != c.schema_id)
                    continue;
                kind = mcap_str_eq(schema_names[i], "pacd.v1.Step")          ? KIND_STEP
                     : mcap_str_eq(schema_names[i], "pacd.v1.CameraFrame")   ? KIND_FRAME
                     : mcap_str_eq(schema_names[i], "pacd.v1.RobotState")    ? KIND_STATE
                                                                             : KIND_OTHER;
            }
            int dup = 0;
            for (int i = 0; i < n_chans; i++)
                dup |= chans[i].id == c.id;
            if (!dup) {
                chans[n_chans].id = c.id;
                chans[n_chans++].kind = kind;
            }
        } else if (rec.opcode == MCAP_OP_MESSAGE) {
            mcap_message_t m;
            if (mcap_parse_message(&rec, &m) != 0)
                continue;
            int kind = -1;
            for (int i = 0; i < n_chans; i++)
                if (chans[i].id == m.channel_id)
                    kind = chans[i].kind;
            if (kind < 0)
                continue;
            json_t *o = NULL;
            if (kind == KIND_STEP) {
                Pacd__V1__Step *s = pacd__v1__step__unpack(NULL, m.data.len, m.data.ptr);
                if (s) {
                    o = step_json(s);
                    pacd__v1__step__free_unpacked(s, NULL);
                }
            } else if (kind == KIND_FRAME) {
                Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, m.data.len, m.data.ptr);
                if (f) {
                    o = frame_json(f);
                    pacd__v1__camera_frame__free_unpacked(f, NULL);
                }
            } else if (kind == KIND_STATE) {
                Pacd__V1__RobotState *s = pacd__v1__robot_state__unpack(NULL, m.data.len, m.data.ptr);
                if (s) {
                    o = state_json(s);
                    pacd__v1__robot_state__free_unpacked(s, NULL);
                }
            } else {
                o = json_pack("{s:I, s:I}", "log_time", (json_int_t)m.log_time, "bytes", (json_int_t)m.data.len);
            }
            if (!o) {
                fprintf(errs, "pacctl log cat: %s: message at byte %" PRIu64 " does not decode; "
                        "run `pacctl log verify %s`\n", path, rec.offset, path);
                code = PACCTL_LOG_CORRUPT;
                break;
            }
            json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(9));
            fputc('\n', out);
            json_decref(o);
        }
    }
    if (code == PACCTL_LOG_OK && st == MCAP_READ_TRUNCATED) {
        fprintf(errs, "pacctl log cat: %s is unfinished (%s at byte %" PRIu64 "); printed every complete record\n",
                path, rd.error, rd.error_offset);
    } else if (code == PACCTL_LOG_OK && st == MCAP_READ_CORRUPT) {
        fprintf(errs, "pacctl log cat: %s is corrupt at byte %" PRIu64 ": %s\n", path, rd.error_offset, rd.error);
        code = PACCTL_LOG_CORRUPT;
    }
    fflush(out);
    return code;
}

int pacctl_log_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return cmd_verify(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "cat") == 0)
        return cmd_cat(argc, argv);
    fprintf(stderr,
            "usage: pacctl log verify [--json] [--strict] FILE   check an episode log\n"
            "       pacctl log cat [--topic TOPIC] FILE          print its messages as JSON lines\n"
            "                                                    (default topic /pacd/step)\n"
            "       pacctl log export -o OUT.hdf5 [--checkpoint CKPT]... EPISODE.mcap...\n"
            "                                                    episode logs as one HDF5 data set\n");
    return PACCTL_LOG_USAGE;
}
