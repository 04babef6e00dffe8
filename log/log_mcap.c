/* mcap — MCAP v0 record encoder and bounds-checked reader (log_mcap.h). */
#include "log_mcap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

const uint8_t mcap_magic[MCAP_MAGIC_LEN] = {0x89, 'M', 'C', 'A', 'P', 0x30, '\r', '\n'};

/* ------------------------------------------------------------------ */
/* Growable byte buffer                                                 */
/* ------------------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int failed;        /* an append could not grow the buffer */
} buf_t;

static int buf_reserve(buf_t *b, size_t extra)
{
    if (b->failed)
        return -ENOMEM;
    if (extra <= b->cap - b->len)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -ENOMEM;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static void put_bytes(buf_t *b, const void *p, size_t n)
{
    if (n == 0 || buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u8(buf_t *b, uint8_t v) { put_bytes(b, &v, 1); }

static void put_le(buf_t *b, uint64_t v, int n)
{
    uint8_t tmp[8];
    for (int i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    put_bytes(b, tmp, (size_t)n);
}

static void put_u16(buf_t *b, uint16_t v) { put_le(b, v, 2); }
static void put_u32(buf_t *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(buf_t *b, uint64_t v) { put_le(b, v, 8); }

static void put_str(buf_t *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(b, (uint32_t)n);
    put_bytes(b, s, n);
}

static void patch_u64(buf_t *b, size_t at, uint64_t v)
{
    if (b->failed || at + 8 > b->len)
        return;
    for (int i = 0; i < 8; i++)
        b->data[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* Opens a record: opcode and a length placeholder; returns where the
 * length goes. */
static size_t record_open(buf_t *b, uint8_t opcode)
{
    put_u8(b, opcode);
    size_t at = b->len;
    put_u64(b, 0);
    return at;
}

static void record_close(buf_t *b, size_t len_at)
{
    patch_u64(b, len_at, (uint64_t)(b->len - (len_at + 8)));
}

/* ------------------------------------------------------------------ */
/* Writer                                                               */
/* ------------------------------------------------------------------ */

struct mcap_writer {
    buf_t batch;            /* pending bytes, not yet handed out */
    buf_t schemas;          /* copies of the Schema records, for the summary */
    buf_t channels;         /* copies of the Channel records */
    uint64_t written;       /* bytes of the file consumed by the caller */
    uint32_t data_crc;      /* running CRC of the data section, consumed bytes */
    size_t crc_upto;        /* batch bytes already folded into data_crc */
    int in_data;            /* 1 between start and finish */

    uint16_t schema_ids[MCAP_MAX_SCHEMAS];
    int n_schemas;
    uint16_t channel_ids[MCAP_MAX_CHANNELS];
    uint64_t channel_counts[MCAP_MAX_CHANNELS];
    uint32_t channel_seq[MCAP_MAX_CHANNELS];
    int n_channels;
    struct { uint64_t offset, length; char name[64]; } metadata[MCAP_MAX_METADATA];
    int n_metadata;
    uint64_t message_count, start_time, end_time;
};

mcap_writer_t *mcap_writer_new(size_t capacity)
{
    mcap_writer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (capacity < 4096)
        capacity = 4096;
    if (buf_reserve(&self->batch, capacity) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void mcap_writer_destroy(mcap_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mcap_writer_t *self = *self_p;
    free(self->batch.data);
    free(self->schemas.data);
    free(self->channels.data);
    free(self);
    *self_p = NULL;
}

static uint64_t file_pos(const mcap_writer_t *self)
{
    return self->written + self->batch.len;
}

static int batch_status(mcap_writer_t *self)
{
    return self->batch.failed || self->schemas.failed || self->channels.failed ? -ENOMEM : 0;
}

int mcap_writer_start(mcap_writer_t *self, const char *profile, const char *library)
{
    self->batch.len = 0;
    self->batch.failed = 0;
    self->schemas.len = 0;
    self->schemas.failed = 0;
    self->channels.len = 0;
    self->channels.failed = 0;
    self->written = 0;
    self->data_crc = 0;
    self->crc_upto = 0;
    self->n_schemas = self->n_channels = self->n_metadata = 0;
    self->message_count = 0;
    self->start_time = self->end_time = 0;
    self->in_data = 1;
    put_bytes(&self->batch, mcap_magic, MCAP_MAGIC_LEN);
    size_t at = record_open(&self->batch, MCAP_OP_HEADER);
    put_str(&self->batch, profile);
    put_str(&self->batch, library);
    record_close(&self->batch, at);
    return batch_status(self);
}

static int schema_index(const mcap_writer_t *self, uint16_t id)
{
    for (int i = 0; i < self->n_schemas; i++)
        if (self->schema_ids[i] == id)
            return i;
    return -1;
}

static int channel_index(const mcap_writer_t *self, uint16_t id)
{
    for (int i = 0; i < self->n_channels; i++)
        if (self->channel_ids[i] == id)
            return i;
    return -1;
}

int mcap_writer_has_channel(const mcap_writer_t *self, uint16_t id)
{
    return channel_index(self, id) >= 0;
}

static void encode_schema(buf_t *b, uint16_t id, const char *name, const char *encoding,
                          const uint8_t *data, size_t len)
{
    size_t at = record_open(b, MCAP_OP_SCHEMA);
    put_u16(b, id);
    put_str(b, name);
    put_str(b, encoding);
    put_u32(b, (uint32_t)len);
    put_bytes(b, data, len);
    record_close(b, at);
}

int mcap_writer_add_schema(mcap_writer_t *self, uint16_t id, const char *name,
                           const char *encoding, const uint8_t *data, size_t len)
{
    if (!self->in_data || id == 0 || schema_index(self, id) >= 0 ||
        self->n_schemas >= MCAP_MAX_SCHEMAS || len > UINT32_MAX)
        return -EINVAL;
    encode_schema(&self->batch, id, name, encoding, data, len);
    encode_schema(&self->schemas, id, name, encoding, data, len);
    int rc = batch_status(self);
    if (rc == 0)
        self->schema_ids[self->n_schemas++] = id;
    return rc;
}

static void encode_channel(buf_t *b, uint16_t id, uint16_t schema_id, const char *topic,
                           const char *message_encoding)
{
    size_t at = record_open(b, MCAP_OP_CHANNEL);
    put_u16(b, id);
    put_u16(b, schema_id);
    put_str(b, topic);
    put_str(b, message_encoding);
    put_u32(b, 0); /* empty metadata map */
    record_close(b, at);
}

int mcap_writer_add_channel(mcap_writer_t *self, uint16_t id, uint16_t schema_id,
                            const char *topic, const char *message_encoding)
{
    if (!self->in_data || channel_index(self, id) >= 0 || self->n_channels >= MCAP_MAX_CHANNELS ||
        (schema_id != 0 && schema_index(self, schema_id) < 0))
        return -EINVAL;
    encode_channel(&self->batch, id, schema_id, topic, message_encoding);
    encode_channel(&self->channels, id, schema_id, topic, message_encoding);
    int rc = batch_status(self);
    if (rc == 0) {
        int i = self->n_channels++;
        self->channel_ids[i] = id;
        self->channel_counts[i] = 0;
        self->channel_seq[i] = 0;
    }
    return rc;
}

int mcap_writer_add_metadata(mcap_writer_t *self, const char *name,
                             const char *const *keys, const char *const *values, size_t n)
{
    if (!self->in_data || self->n_metadata >= MCAP_MAX_METADATA)
        return -EINVAL;
    uint64_t offset = file_pos(self);
    buf_t *b = &self->batch;
    size_t at = record_open(b, MCAP_OP_METADATA);
    put_str(b, name);
    size_t map_at = b->len;
    put_u32(b, 0);
    for (size_t i = 0; i < n; i++) {
        put_str(b, keys[i]);
        put_str(b, values[i]);
    }
    if (!b->failed) {
        uint32_t map_len = (uint32_t)(b->len - map_at - 4);
        for (int i = 0; i < 4; i++)
            b->data[map_at + (size_t)i] = (uint8_t)(map_len >> (8 * i));
    }
    record_close(b, at);
    int rc = batch_status(self);
    if (rc == 0) {
        int i = self->n_metadata++;
        self->metadata[i].offset = offset;
        self->metadata[i].length = file_pos(self) - offset;
        snprintf(self->metadata[i].name, sizeof self->metadata[i].name, "%s", name ? name : "");
    }
    return rc;
}

int mcap_writer_add_message(mcap_writer_t *self, uint16_t channel_id, uint64_t log_time,
                            uint64_t publish_time, const uint8_t *data, size_t len)
{
    int ci = channel_index(self, channel_id);
    if (!self->in_data || ci < 0)
        return -EINVAL;
    buf_t *b = &self->batch;
    if (buf_reserve(b, 1 + 8 + 2 + 4 + 8 + 8 + len) != 0)
        return -ENOMEM;
    size_t at = record_open(b, MCAP_OP_MESSAGE);
    put_u16(b, channel_id);
    put_u32(b, self->channel_seq[ci]);
    put_u64(b, log_time);
    put_u64(b, publish_time);
    put_bytes(b, data, len);
    record_close(b, at);
    int rc = batch_status(self);
    if (rc != 0)
        return rc;
    self->channel_seq[ci]++;
    self->channel_counts[ci]++;
    if (self->message_count == 0 || log_time < self->start_time)
        self->start_time = log_time;
    if (self->message_count == 0 || log_time > self->end_time)
        self->end_time = log_time;
    self->message_count++;
    return 0;
}

/* Fold the batch bytes not yet in the data CRC into it. */
static void crc_catch_up(mcap_writer_t *self)
{
    if (self->crc_upto < self->batch.len) {
        self->data_crc = mcap_crc32(self->data_crc, self->batch.data + self->crc_upto,
                                    self->batch.len - self->crc_upto);
        self->crc_upto = self->batch.len;
    }
}

int mcap_writer_finish(mcap_writer_t *self)
{
    if (!self->in_data)
        return -EINVAL;
    buf_t *b = &self->batch;
    crc_catch_up(self);
    size_t at = record_open(b, MCAP_OP_DATA_END);
    put_u32(b, self->data_crc);
    record_close(b, at);
    self->in_data = 0;

    size_t summary_in_batch = b->len;
    uint64_t summary_start = file_pos(self);

    struct { uint8_t op; uint64_t start, length; } groups[4];
    int n_groups = 0;

    /* Schemas and Channels: byte copies of the records in the data section. */
    if (self->schemas.len) {
        groups[n_groups].op = MCAP_OP_SCHEMA;
        groups[n_groups].start = file_pos(self);
        put_bytes(b, self->schemas.data, self->schemas.len);
        groups[n_groups].length = file_pos(self) - groups[n_groups].start;
        n_groups++;
    }
    if (self->channels.len) {
        groups[n_groups].op = MCAP_OP_CHANNEL;
        groups[n_groups].start = file_pos(self);
        put_bytes(b, self->channels.data, self->channels.len);
        groups[n_groups].length = file_pos(self) - groups[n_groups].start;
        n_groups++;
    }

    groups[n_groups].op = MCAP_OP_STATISTICS;
    groups[n_groups].start = file_pos(self);
    at = record_open(b, MCAP_OP_STATISTICS);
    put_u64(b, self->message_count);
    put_u16(b, (uint16_t)self->n_schemas);
    put_u32(b, (uint32_t)self->n_channels);
    put_u32(b, 0); /* attachments */
    put_u32(b, (uint32_t)self->n_metadata);
    put_u32(b, 0); /* chunks */
    put_u64(b, self->start_time);
    put_u64(b, self->end_time);
    put_u32(b, (uint32_t)self->n_channels * (2 + 8));
    for (int i = 0; i < self->n_channels; i++) {
        put_u16(b, self->channel_ids[i]);
        put_u64(b, self->channel_counts[i]);
    }
    record_close(b, at);
    groups[n_groups].length = file_pos(self) - groups[n_groups].start;
    n_groups++;

    if (self->n_metadata) {
        groups[n_groups].op = MCAP_OP_METADATA_INDEX;
        groups[n_groups].start = file_pos(self);
        for (int i = 0; i < self->n_metadata; i++) {
            at = record_open(b, MCAP_OP_METADATA_INDEX);
            put_u64(b, self->metadata[i].offset);
            put_u64(b, self->metadata[i].length);
            put_str(b, self->metadata[i].name);
            record_close(b, at);
        }
        groups[n_groups].length = file_pos(self) - groups[n_groups].start;
        n_groups++;
    }

    uint64_t summary_offset_start = file_pos(self);
    for (int i = 0; i < n_groups; i++) {
        at = record_open(b, MCAP_OP_SUMMARY_OFFSET);
        put_u8(b, groups[i].op);
        put_u64(b, groups[i].start);
        put_u64(b, groups[i].length);
        record_close(b, at);
    }

    put_u8(b, MCAP_OP_FOOTER);
    put_u64(b, 8 + 8 + 4);
    put_u64(b, summary_start);
    put_u64(b, summary_offset_start);
    if (b->failed)
        return -ENOMEM;
    /* Summary CRC: from the summary start through summary_offset_start. */
    uint32_t crc = mcap_crc32(0, b->data + summary_in_batch, b->len - summary_in_batch);
    put_u32(b, crc);
    put_bytes(b, mcap_magic, MCAP_MAGIC_LEN);
    self->crc_upto = b->len;
    return batch_status(self);
}

void mcap_writer_pending(const mcap_writer_t *self, const uint8_t **data, size_t *len)
{
    *data = self->batch.data;
    *len = self->batch.failed ? 0 : self->batch.len;
}

void mcap_writer_consume(mcap_writer_t *self)
{
    if (self->in_data)
        crc_catch_up(self);
    self->written += self->batch.len;
    self->batch.len = 0;
    self->crc_upto = 0;
}

uint64_t mcap_writer_offset(const mcap_writer_t *self) { return file_pos(self); }
uint64_t mcap_writer_message_count(const mcap_writer_t *self) { return self->message_count; }

uint32_t mcap_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    uLong c = crc;
    while (len > 0) {
        uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;
        c = crc32(c, data, n);
        data += n;
        len -= n;
    }
    return (uint32_t)c;
}

/* ------------------------------------------------------------------ */
/* Reader                                                               */
/* ------------------------------------------------------------------ */

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void mcap_reader_init(mcap_reader_t *reader, const uint8_t *data, size_t len)
{
    memset(reader, 0, sizeof *reader);
    reader->data = data;
    reader->len = data ? len : 0;
}

static mcap_read_status_t fail(mcap_reader_t *r, int status, uint64_t offset, const char *why)
{
    r->state = status == MCAP_READ_TRUNCATED ? 4 : 5;
    r->error_offset = offset;
    r->error = why;
    return (mcap_read_status_t)status;
}

mcap_read_status_t mcap_reader_next(mcap_reader_t *r, mcap_record_t *rec)
{
    if (r->state == 4)
        return MCAP_READ_TRUNCATED;
    if (r->state == 5)
        return MCAP_READ_CORRUPT;
    if (r->state == 3)
        return MCAP_READ_END;
    if (r->state == 0) {
        size_t n = r->len < MCAP_MAGIC_LEN ? r->len : MCAP_MAGIC_LEN;
        if (memcmp(r->data, mcap_magic, n) != 0)
            return fail(r, MCAP_READ_CORRUPT, 0, "not an MCAP file (bad magic)");
        if (n < MCAP_MAGIC_LEN)
            return fail(r, MCAP_READ_TRUNCATED, 0, "file ends inside the leading magic");
        r->pos = MCAP_MAGIC_LEN;
        r->state = 1;
    }
    if (r->state == 2) {
        /* after the Footer: exactly the trailing magic */
        size_t left = r->len - r->pos;
        size_t n = left < MCAP_MAGIC_LEN ? left : MCAP_MAGIC_LEN;
        if (memcmp(r->data + r->pos, mcap_magic, n) != 0)
            return fail(r, MCAP_READ_CORRUPT, r->pos, "bad trailing magic after the footer");
        if (n < MCAP_MAGIC_LEN)
            return fail(r, MCAP_READ_TRUNCATED, r->pos, "file ends inside the trailing magic");
        if (left > MCAP_MAGIC_LEN)
            return fail(r, MCAP_READ_CORRUPT, r->pos + MCAP_MAGIC_LEN,
                        "bytes after the trailing magic");
        r->state = 3;
        return MCAP_READ_END;
    }
    size_t left = r->len - r->pos;
    if (left == 0)
        return fail(r, MCAP_READ_TRUNCATED, r->pos, "file ends without a footer");
    const uint8_t *p = r->data + r->pos;
    if (p[0] == 0) {
        /* A tail of zero bytes is what a power loss can leave after the
         * size was extended but before the data reached the disk. */
        size_t i = 0;
        while (i < left && p[i] == 0)
            i++;
        if (i == left)
            return fail(r, MCAP_READ_TRUNCATED, r->pos, "file ends in zero bytes (cut by a power loss?)");
        return fail(r, MCAP_READ_CORRUPT, r->pos, "invalid opcode 0x00");
    }
    if (left < 9)
        return fail(r, MCAP_READ_TRUNCATED, r->pos, "file ends inside a record header");
    uint64_t length = get_le(p + 1, 8);
    if (length > MCAP_MAX_RECORD_LEN)
        return fail(r, MCAP_READ_CORRUPT, r->pos, "record length is impossibly large");
    if (length > left - 9)
        return fail(r, MCAP_READ_TRUNCATED, r->pos, "file ends inside a record");
    rec->opcode = p[0];
    rec->offset = r->pos;
    rec->length = length;
    rec->content = p + 9;
    r->pos += 9 + (size_t)length;
    if (rec->opcode == MCAP_OP_FOOTER)
        r->state = 2;
    return MCAP_READ_RECORD;
}

/* Cursor over one record's content for the parsers. */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} cur_t;

static uint64_t cur_le(cur_t *c, int n)
{
    if (c->bad || c->len - c->pos < (size_t)n) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = get_le(c->p + c->pos, n);
    c->pos += (size_t)n;
    return v;
}

static mcap_str_t cur_str(cur_t *c)
{
    mcap_str_t s = {"", 0};
    uint64_t n = cur_le(c, 4);
    if (c->bad || c->len - c->pos < n) {
        c->bad = 1;
        return s;
    }
    s.ptr = (const char *)c->p + c->pos;
    s.len = (uint32_t)n;
    c->pos += (size_t)n;
    return s;
}

static mcap_bytes_t cur_bytes(cur_t *c, uint64_t n)
{
    mcap_bytes_t b = {NULL, 0};
    if (c->bad || c->len - c->pos < n) {
        c->bad = 1;
        return b;
    }
    b.ptr = c->p + c->pos;
    b.len = (size_t)n;
    c->pos += (size_t)n;
    return b;
}

static cur_t cur_of(const mcap_record_t *rec)
{
    cur_t c = {rec->content, (size_t)rec->length, 0, 0};
    return c;
}

int mcap_parse_header(const mcap_record_t *rec, mcap_header_t *out)
{
    cur_t c = cur_of(rec);
    out->profile = cur_str(&c);
    out->library = cur_str(&c);
    return c.bad ? -EBADMSG : 0;
}

int mcap_parse_footer(const mcap_record_t *rec, mcap_footer_t *out)
{
    cur_t c = cur_of(rec);
    out->summary_start = cur_le(&c, 8);
    out->summary_offset_start = cur_le(&c, 8);
    out->summary_crc = (uint32_t)cur_le(&c, 4);
    return c.bad ? -EBADMSG : 0;
}

int mcap_parse_schema(const mcap_record_t *rec, mcap_schema_t *out)
{
    cur_t c = cur_of(rec);
    out->id = (uint16_t)cur_le(&c, 2);
    out->name = cur_str(&c);
    out->encoding = cur_str(&c);
    uint64_t n = cur_le(&c, 4);
    out->data = cur_bytes(&c, n);
    return c.bad ? -EBADMSG : 0;
}

int mcap_parse_channel(const mcap_record_t *rec, mcap_channel_t *out)
{
    cur_t c = cur_of(rec);
    out->id = (uint16_t)cur_le(&c, 2);
    out->schema_id = (uint16_t)cur_le(&c, 2);
    out->topic = cur_str(&c);
    out->message_encoding = cur_str(&c);
    uint64_t n = cur_le(&c, 4);
    out->metadata = cur_bytes(&c, n);
    if (!c.bad) {
        size_t pos = 0;
        mcap_str_t k, v;
        int rc;
        while ((rc = mcap_map_next(out->metadata, &pos, &k, &v)) == 1)
            ;
        if (rc < 0)
            return -EBADMSG;
    }
    return c.bad ? -EBADMSG : 0;
}

int mcap_parse_message(const mcap_record_t *rec, mcap_message_t *out)
{
    cur_t c = cur_of(rec);
    out->channel_id = (uint16_t)cur_le(&c, 2);
    out->sequence = (uint32_t)cur_le(&c, 4);
    out->log_time = cur_le(&c, 8);
    out->publish_time = cur_le(&c, 8);
    if (c.bad)
        return -EBADMSG;
    out->data = cur_bytes(&c, c.len - c.pos);
    return 0;
}

int mcap_parse_metadata(const mcap_record_t *rec, mcap_metadata_t *out)
{
    cur_t c = cur_of(rec);
    out->name = cur_str(&c);
    uint64_t n = cur_le(&c, 4);
    out->map = cur_bytes(&c, n);
    if (c.bad)
        return -EBADMSG;
    size_t pos = 0;
    mcap_str_t k, v;
    int rc;
    while ((rc = mcap_map_next(out->map, &pos, &k, &v)) == 1)
        ;
    return rc < 0 ? -EBADMSG : 0;
}

int mcap_parse_statistics(const mcap_record_t *rec, mcap_statistics_t *out)
{
    cur_t c = cur_of(rec);
    out->message_count = cur_le(&c, 8);
    out->schema_count = (uint16_t)cur_le(&c, 2);
    out->channel_count = (uint32_t)cur_le(&c, 4);
    out->attachment_count = (uint32_t)cur_le(&c, 4);
    out->metadata_count = (uint32_t)cur_le(&c, 4);
    out->chunk_count = (uint32_t)cur_le(&c, 4);
    out->message_start_time = cur_le(&c, 8);
    out->message_end_time = cur_le(&c, 8);
    uint64_t n = cur_le(&c, 4);
    out->channel_message_counts = cur_bytes(&c, n);
    if (c.bad || out->channel_message_counts.len % 10 != 0)
        return -EBADMSG;
    return 0;
}

int mcap_parse_metadata_index(const mcap_record_t *rec, mcap_metadata_index_t *out)
{
    cur_t c = cur_of(rec);
    out->offset = cur_le(&c, 8);
    out->length = cur_le(&c, 8);
    out->name = cur_str(&c);
    return c.bad ? -EBADMSG : 0;
}

int mcap_parse_summary_offset(const mcap_record_t *rec, mcap_summary_offset_t *out)
{
    cur_t c = cur_of(rec);
    out->group_opcode = (uint8_t)cur_le(&c, 1);
    out->group_start = cur_le(&c, 8);
    out->group_length = cur_le(&c, 8);
    return c.bad ? -EBADMSG : 0;
}

int mcap_parse_data_end(const mcap_record_t *rec, uint32_t *data_section_crc)
{
    cur_t c = cur_of(rec);
    *data_section_crc = (uint32_t)cur_le(&c, 4);
    return c.bad ? -EBADMSG : 0;
}

int mcap_map_next(mcap_bytes_t map, size_t *pos, mcap_str_t *key, mcap_str_t *value)
{
    if (*pos >= map.len)
        return 0;
    cur_t c = {map.ptr, map.len, *pos, 0};
    *key = cur_str(&c);
    *value = cur_str(&c);
    if (c.bad)
        return -EBADMSG;
    *pos = c.pos;
    return 1;
}

int mcap_count_map_next(mcap_bytes_t map, size_t *pos, uint16_t *channel_id, uint64_t *count)
{
    if (*pos >= map.len)
        return 0;
    cur_t c = {map.ptr, map.len, *pos, 0};
    *channel_id = (uint16_t)cur_le(&c, 2);
    *count = cur_le(&c, 8);
    if (c.bad)
        return -EBADMSG;
    *pos = c.pos;
    return 1;
}

int mcap_str_eq(mcap_str_t s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && (n == 0 || memcmp(s.ptr, text, n) == 0);
}
