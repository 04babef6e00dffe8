/* Unit tests of log/log_mcap.c: the record encoder and the reader. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log_mcap.h"

static const uint8_t schema_data[] = {1, 2, 3, 4, 5};
static const uint8_t msg_a[] = {0x08, 0x01};
static const uint8_t msg_b[] = {0x10, 0x02, 0x18, 0x03};

/* Builds a small file; when consume_each, hands out the batch after every
 * record as the logger does between batches. Caller frees *out. */
static void build_file(int consume_each, uint8_t **out, size_t *out_len)
{
    mcap_writer_t *w = mcap_writer_new(16);
    assert_non_null(w);
    uint8_t *file = NULL;
    size_t len = 0;
#define TAKE()                                                   \
    do {                                                         \
        const uint8_t *d;                                        \
        size_t n;                                                \
        mcap_writer_pending(w, &d, &n);                          \
        file = realloc(file, len + n + 1);                       \
        assert_non_null(file);                                   \
        memcpy(file + len, d, n);                                \
        len += n;                                                \
        mcap_writer_consume(w);                                  \
    } while (0)
    assert_int_equal(mcap_writer_start(w, "pacd", "pacd test"), 0);
    if (consume_each) TAKE();
    assert_int_equal(mcap_writer_add_schema(w, 7, "pkg.Msg", "protobuf", schema_data, sizeof schema_data), 0);
    if (consume_each) TAKE();
    assert_int_equal(mcap_writer_add_channel(w, 3, 7, "/topic/a", "protobuf"), 0);
    if (consume_each) TAKE();
    const char *keys[] = {"k1", "k2"};
    const char *values[] = {"v1", ""};
    assert_int_equal(mcap_writer_add_metadata(w, "meta", keys, values, 2), 0);
    if (consume_each) TAKE();
    assert_int_equal(mcap_writer_add_message(w, 3, 100, 101, msg_a, sizeof msg_a), 0);
    if (consume_each) TAKE();
    assert_int_equal(mcap_writer_add_message(w, 3, 50, 51, msg_b, sizeof msg_b), 0);
    if (consume_each) TAKE();
    assert_int_equal(mcap_writer_finish(w), 0);
    TAKE();
#undef TAKE
    assert_int_equal(mcap_writer_offset(w), len);
    mcap_writer_destroy(&w);
    assert_null(w);
    *out = file;
    *out_len = len;
}

static void test_crc32_check_value(void **state)
{
    (void)state;
    /* The CRC-32/ISO-HDLC check value of "123456789" (CRC catalogue). */
    assert_int_equal(mcap_crc32(0, (const uint8_t *)"123456789", 9), 0xCBF43926u);
    /* continuing a CRC equals computing it in one go */
    uint32_t c = mcap_crc32(0, (const uint8_t *)"1234", 4);
    assert_int_equal(mcap_crc32(c, (const uint8_t *)"56789", 5), 0xCBF43926u);
}

static void test_roundtrip_records(void **state)
{
    (void)state;
    uint8_t *file;
    size_t len;
    build_file(0, &file, &len);
    assert_memory_equal(file, mcap_magic, MCAP_MAGIC_LEN);
    assert_memory_equal(file + len - MCAP_MAGIC_LEN, mcap_magic, MCAP_MAGIC_LEN);

    mcap_reader_t rd;
    mcap_reader_init(&rd, file, len);
    mcap_record_t rec;
    uint8_t ops[32];
    int n = 0;
    uint64_t summary_start = 0, data_end_offset = 0, metadata_offset = 0;
    int messages = 0, stats = 0;
    mcap_footer_t footer = {0};
    while (mcap_reader_next(&rd, &rec) == MCAP_READ_RECORD) {
        assert_true(n < 32);
        ops[n++] = rec.opcode;
        if (rec.opcode == MCAP_OP_HEADER) {
            mcap_header_t h;
            assert_int_equal(mcap_parse_header(&rec, &h), 0);
            assert_true(mcap_str_eq(h.profile, "pacd"));
            assert_true(mcap_str_eq(h.library, "pacd test"));
        } else if (rec.opcode == MCAP_OP_SCHEMA) {
            mcap_schema_t s;
            assert_int_equal(mcap_parse_schema(&rec, &s), 0);
            assert_int_equal(s.id, 7);
            assert_true(mcap_str_eq(s.name, "pkg.Msg"));
            assert_true(mcap_str_eq(s.encoding, "protobuf"));
            assert_int_equal(s.data.len, sizeof schema_data);
            assert_memory_equal(s.data.ptr, schema_data, sizeof schema_data);
        } else if (rec.opcode == MCAP_OP_CHANNEL) {
            mcap_channel_t c;
            assert_int_equal(mcap_parse_channel(&rec, &c), 0);
            assert_int_equal(c.id, 3);
            assert_int_equal(c.schema_id, 7);
            assert_true(mcap_str_eq(c.topic, "/topic/a"));
            assert_int_equal(c.metadata.len, 0);
        } else if (rec.opcode == MCAP_OP_METADATA) {
            mcap_metadata_t md;
            metadata_offset = rec.offset;
            assert_int_equal(mcap_parse_metadata(&rec, &md), 0);
            assert_true(mcap_str_eq(md.name, "meta"));
            size_t pos = 0;
            mcap_str_t k, v;
            assert_int_equal(mcap_map_next(md.map, &pos, &k, &v), 1);
            assert_true(mcap_str_eq(k, "k1") && mcap_str_eq(v, "v1"));
            assert_int_equal(mcap_map_next(md.map, &pos, &k, &v), 1);
            assert_true(mcap_str_eq(k, "k2") && mcap_str_eq(v, ""));
            assert_int_equal(mcap_map_next(md.map, &pos, &k, &v), 0);
        } else if (rec.opcode == MCAP_OP_MESSAGE) {
            mcap_message_t m;
            assert_int_equal(mcap_parse_message(&rec, &m), 0);
            assert_int_equal(m.channel_id, 3);
            assert_int_equal(m.sequence, (uint32_t)messages);
            const uint8_t *want = messages == 0 ? msg_a : msg_b;
            size_t want_len = messages == 0 ? sizeof msg_a : sizeof msg_b;
            assert_int_equal(m.log_time, messages == 0 ? 100 : 50);
            assert_int_equal(m.publish_time, messages == 0 ? 101 : 51);
            assert_int_equal(m.data.len, want_len);
            assert_memory_equal(m.data.ptr, want, want_len);
            messages++;
        } else if (rec.opcode == MCAP_OP_DATA_END) {
            uint32_t crc;
            data_end_offset = rec.offset;
            assert_int_equal(mcap_parse_data_end(&rec, &crc), 0);
            assert_int_equal(crc, mcap_crc32(0, file, (size_t)rec.offset));
            summary_start = rec.offset + 9 + rec.length;
        } else if (rec.opcode == MCAP_OP_STATISTICS) {
            mcap_statistics_t s;
            assert_int_equal(mcap_parse_statistics(&rec, &s), 0);
            assert_int_equal(s.message_count, 2);
            assert_int_equal(s.schema_count, 1);
            assert_int_equal(s.channel_count, 1);
            assert_int_equal(s.metadata_count, 1);
            assert_int_equal(s.message_start_time, 50);
            assert_int_equal(s.message_end_time, 100);
            size_t pos = 0;
            uint16_t id;
            uint64_t count;
            assert_int_equal(mcap_count_map_next(s.channel_message_counts, &pos, &id, &count), 1);
            assert_int_equal(id, 3);
            assert_int_equal(count, 2);
            assert_int_equal(mcap_count_map_next(s.channel_message_counts, &pos, &id, &count), 0);
            stats++;
        } else if (rec.opcode == MCAP_OP_METADATA_INDEX) {
            mcap_metadata_index_t mi;
            assert_int_equal(mcap_parse_metadata_index(&rec, &mi), 0);
            assert_int_equal(mi.offset, metadata_offset);
            assert_true(mcap_str_eq(mi.name, "meta"));
            assert_int_equal(file[mi.offset], MCAP_OP_METADATA);
        } else if (rec.opcode == MCAP_OP_SUMMARY_OFFSET) {
            mcap_summary_offset_t so;
            assert_int_equal(mcap_parse_summary_offset(&rec, &so), 0);
            assert_true(so.group_start + so.group_length <= len);
            assert_int_equal(file[so.group_start], so.group_opcode);
        } else if (rec.opcode == MCAP_OP_FOOTER) {
            assert_int_equal(mcap_parse_footer(&rec, &footer), 0);
            size_t end = (size_t)rec.offset + 1 + 8 + 16;
            assert_int_equal(footer.summary_crc,
                             mcap_crc32(0, file + footer.summary_start, end - (size_t)footer.summary_start));
        }
    }
    assert_int_equal(mcap_reader_next(&rd, &rec), MCAP_READ_END);
    assert_int_equal(messages, 2);
    assert_int_equal(stats, 1);
    assert_true(data_end_offset > 0);
    assert_int_equal(footer.summary_start, summary_start);
    const uint8_t want_ops[] = {MCAP_OP_HEADER, MCAP_OP_SCHEMA, MCAP_OP_CHANNEL, MCAP_OP_METADATA,
                                MCAP_OP_MESSAGE, MCAP_OP_MESSAGE, MCAP_OP_DATA_END, MCAP_OP_SCHEMA,
                                MCAP_OP_CHANNEL, MCAP_OP_STATISTICS, MCAP_OP_METADATA_INDEX};
    assert_true(n > (int)sizeof want_ops);
    assert_memory_equal(ops, want_ops, sizeof want_ops);
    assert_int_equal(ops[n - 1], MCAP_OP_FOOTER);
    free(file);
}

static void test_batches_equal_one_batch(void **state)
{
    (void)state;
    uint8_t *a, *b;
    size_t la, lb;
    build_file(0, &a, &la);
    build_file(1, &b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
}

static void test_writer_rejects(void **state)
{
    (void)state;
    mcap_writer_t *w = mcap_writer_new(0);
    assert_non_null(w);
    assert_int_equal(mcap_writer_start(w, "", ""), 0);
    assert_int_equal(mcap_writer_add_schema(w, 0, "x", "protobuf", NULL, 0), -EINVAL);
    assert_int_equal(mcap_writer_add_schema(w, 1, "x", "protobuf", NULL, 0), 0);
    assert_int_equal(mcap_writer_add_schema(w, 1, "x", "protobuf", NULL, 0), -EINVAL);
    assert_int_equal(mcap_writer_add_channel(w, 1, 9, "/t", "protobuf"), -EINVAL);
    assert_int_equal(mcap_writer_add_message(w, 1, 0, 0, msg_a, sizeof msg_a), -EINVAL);
    assert_int_equal(mcap_writer_add_channel(w, 1, 1, "/t", "protobuf"), 0);
    assert_true(mcap_writer_has_channel(w, 1));
    assert_false(mcap_writer_has_channel(w, 2));
    assert_int_equal(mcap_writer_add_message(w, 1, 0, 0, msg_a, sizeof msg_a), 0);
    assert_int_equal(mcap_writer_message_count(w), 1);
    assert_int_equal(mcap_writer_finish(w), 0);
    assert_int_equal(mcap_writer_finish(w), -EINVAL);
    mcap_writer_destroy(&w);
    mcap_writer_destroy(&w); /* NULL-safe */
}

/* Reader on a copy of exactly len bytes, so ASan sees any overread. */
static mcap_read_status_t read_all(const uint8_t *src, size_t len, int *records, uint64_t *err_off)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, src, len);
    mcap_reader_t rd;
    mcap_reader_init(&rd, copy, len);
    mcap_record_t rec;
    mcap_read_status_t st;
    *records = 0;
    while ((st = mcap_reader_next(&rd, &rec)) == MCAP_READ_RECORD)
        (*records)++;
    /* sticky */
    assert_int_equal(mcap_reader_next(&rd, &rec), st);
    *err_off = rd.error_offset;
    free(copy);
    return st;
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_reader_bad_input(void **state)
{
    (void)state;
    uint8_t *file;
    size_t len;
    build_file(0, &file, &len);
    int recs;
    uint64_t off;

    assert_int_equal(read_all(file, 0, &recs, &off), MCAP_READ_TRUNCATED);
    assert_int_equal(read_all(file, 5, &recs, &off), MCAP_READ_TRUNCATED);
    assert_int_equal(recs, 0);

    uint8_t *bad = malloc(len + 16);
    assert_non_null(bad);

    /* bad magic */
    memcpy(bad, file, len);
    bad[1] = 'X';
    assert_int_equal(read_all(bad, len, &recs, &off), MCAP_READ_CORRUPT);
    assert_int_equal(off, 0);

    /* the Header's length made huge */
    memcpy(bad, file, len);
    put_u64le(bad + MCAP_MAGIC_LEN + 1, 1ULL << 62);
    assert_int_equal(read_all(bad, len, &recs, &off), MCAP_READ_CORRUPT);
    assert_int_equal(off, MCAP_MAGIC_LEN);

    /* opcode 0 followed by non-zero bytes: corrupt; an all-zero tail: truncated */
    memcpy(bad, file, len);
    bad[MCAP_MAGIC_LEN] = 0;
    assert_int_equal(read_all(bad, len, &recs, &off), MCAP_READ_CORRUPT);
    memcpy(bad, file, len);
    memset(bad + len, 0, 16);
    size_t before_footer = len - MCAP_MAGIC_LEN - (1 + 8 + 20);
    memset(bad + before_footer, 0, len + 16 - before_footer);
    assert_int_equal(read_all(bad, len + 16, &recs, &off), MCAP_READ_TRUNCATED);
    assert_int_equal(off, before_footer);

    /* bytes after the trailing magic */
    memcpy(bad, file, len);
    bad[len] = 0x55;
    assert_int_equal(read_all(bad, len + 1, &recs, &off), MCAP_READ_CORRUPT);
    assert_int_equal(off, len);

    /* trailing magic damaged */
    memcpy(bad, file, len);
    bad[len - 1] ^= 0xff;
    assert_int_equal(read_all(bad, len, &recs, &off), MCAP_READ_CORRUPT);

    /* complete file */
    assert_int_equal(read_all(file, len, &recs, &off), MCAP_READ_END);
    free(bad);
    free(file);
}

static void test_parsers_reject_overruns(void **state)
{
    (void)state;
    /* A Schema whose name length claims more bytes than the record has. */
    uint8_t content[] = {1, 0, 200, 0, 0, 0, 'a', 'b'};
    mcap_record_t rec = {MCAP_OP_SCHEMA, 0, sizeof content, content};
    mcap_schema_t s;
    assert_int_equal(mcap_parse_schema(&rec, &s), -EBADMSG);
    mcap_channel_t c;
    assert_int_equal(mcap_parse_channel(&rec, &c), -EBADMSG);
    mcap_message_t m;
    rec.length = 21; /* one byte short of the Message header */
    uint8_t msg[21] = {0};
    rec.content = msg;
    assert_int_equal(mcap_parse_message(&rec, &m), -EBADMSG);
    rec.length = 0;
    mcap_footer_t f;
    assert_int_equal(mcap_parse_footer(&rec, &f), -EBADMSG);
    uint32_t crc;
    assert_int_equal(mcap_parse_data_end(&rec, &crc), -EBADMSG);
    mcap_statistics_t st;
    assert_int_equal(mcap_parse_statistics(&rec, &st), -EBADMSG);
    /* map entry overrun */
    uint8_t map[] = {2, 0, 0, 0, 'k', 'x', 9, 0, 0, 0, 'v'};
    mcap_bytes_t b = {map, sizeof map};
    size_t pos = 0;
    mcap_str_t k, v;
    assert_int_equal(mcap_map_next(b, &pos, &k, &v), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_check_value),
        cmocka_unit_test(test_roundtrip_records),
        cmocka_unit_test(test_batches_equal_one_batch),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_reader_bad_input),
        cmocka_unit_test(test_parsers_reject_overruns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
