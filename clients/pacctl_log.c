/* pacctl_log — `pacctl log verify|cat` (pacctl_log.h, docs/episode-log.md). */
#include "pacctl_log.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log_reader.h"
#include "pacctl_json.h"
#include "pacd_proto.h"

/* ------------------------------------------------------------------ */
/* Command line                                                         */
/* ------------------------------------------------------------------ */

static const char *status_name(log_status_t s)
{
    return s == LOG_VALID ? "ok" : s == LOG_INCOMPLETE ? "unfinished" : "corrupt";
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

static void print_report_text(const char *path, const log_report_t *r)
{
    switch (r->status) {
    case LOG_VALID:
        printf("%s: ok, closed cleanly\n", path);
        break;
    case LOG_INCOMPLETE:
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

static void print_report_json(const char *path, const log_report_t *r)
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
    if (r->status == LOG_VALID) {
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
    log_report_t *r = malloc(sizeof *r);
    if (!r)
        return PACCTL_LOG_USAGE;
    if (log_verify_file(path, r) != 0) {
        fprintf(stderr, "pacctl log verify: %s\n", r->error);
        free(r);
        return PACCTL_LOG_USAGE;
    }
    if (as_json)
        print_report_json(path, r);
    else
        print_report_text(path, r);
    int code = r->status == LOG_VALID ? PACCTL_LOG_OK
             : r->status == LOG_INCOMPLETE ? (strict ? PACCTL_LOG_UNFINISHED : PACCTL_LOG_OK)
             : PACCTL_LOG_CORRUPT;
    free(r);
    return code;
}

/* How `pacctl log cat` prints the pacd.v1 messages (docs/episode-log.md): every
 * field of Step, CameraFrame and RobotState in .proto order, enums as numbers,
 * bytes as their length, and these fields shaped for reading. A field added to
 * the .proto is printed without a change here. */
static const pacctl_json_rule_t cat_rules[] = {
    {"pacd.v1.Step", "observation", PACCTL_JSON_BY_NAME, NULL},    /* + observation_shape */
    {"pacd.v1.Step", "action", PACCTL_JSON_FLATTEN, NULL},         /* + action_space */
    {"pacd.v1.Action", "time_unix_ns", PACCTL_JSON_OMIT, NULL},    /* the step's own time */
    {"pacd.v1.Action", "seq", PACCTL_JSON_OMIT, NULL},
    {"pacd.v1.Step", "has_q_value", PACCTL_JSON_OMIT, NULL},
    {"pacd.v1.Step", "q_value", PACCTL_JSON_FIELD, "has_q_value"},
    {"pacd.v1.Step", "teleop_action", PACCTL_JSON_FIELD, "teleop_action"},
    {"pacd.v1.Step", "teleop_action_seq", PACCTL_JSON_FIELD, "teleop_action"},
    {"pacd.v1.Step", "shadow", PACCTL_JSON_FIELD, "shadow"},
    {"pacd.v1.Step", "task_info", PACCTL_JSON_BY_NAME, "task_info"},
    {"pacd.v1.RobotState", "end_effector", PACCTL_JSON_ARRAY, "end_effector"},
};

static const pacctl_json_view_t cat_view = {
    .enums_as_numbers = 1,
    .bytes_as_length = 1,
    .rules = cat_rules,
    .n_rules = sizeof cat_rules / sizeof cat_rules[0],
};

/* The protobuf message of a channel kind; NULL for LOG_KIND_OTHER. */
static const ProtobufCMessageDescriptor *message_type(log_kind_t kind)
{
    switch (kind) {
    case LOG_KIND_STEP: return &pacd__v1__step__descriptor;
    case LOG_KIND_FRAME: return &pacd__v1__camera_frame__descriptor;
    case LOG_KIND_STATE: return &pacd__v1__robot_state__descriptor;
    default: return NULL;
    }
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
    int rc = log_read_file(path, &data, &len);
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
    log_reader_t rd;
    log_reader_init(&rd, data, len, 0);
    log_message_t m;
    mcap_read_status_t st;
    int code = PACCTL_LOG_OK;
    while ((st = log_reader_next(&rd, &m)) == MCAP_READ_RECORD) {
        if (!m.known_channel || !mcap_str_eq(m.topic, topic))
            continue;
        json_t *o = NULL;
        const ProtobufCMessageDescriptor *d = message_type(m.kind);
        if (d) {
            ProtobufCMessage *pm = protobuf_c_message_unpack(d, NULL, m.data.len, m.data.ptr);
            if (pm) {
                o = pacctl_message_to_json_view(pm, &cat_view);
                protobuf_c_message_free_unpacked(pm, NULL);
            }
        } else {
            o = json_pack("{s:I, s:I}", "log_time", (json_int_t)m.log_time, "bytes",
                          (json_int_t)m.data.len);
        }
        if (!o) {
            fprintf(errs, "pacctl log cat: %s: message at byte %" PRIu64 " does not decode; "
                    "run `pacctl log verify %s`\n", path, m.offset, path);
            code = PACCTL_LOG_CORRUPT;
            break;
        }
        json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(9));
        fputc('\n', out);
        json_decref(o);
    }
    if (code == PACCTL_LOG_OK && st == MCAP_READ_TRUNCATED) {
        fprintf(errs, "pacctl log cat: %s is unfinished (%s at byte %" PRIu64 "); printed every "
                "complete record\n", path, rd.rd.error, rd.rd.error_offset);
    } else if (code == PACCTL_LOG_OK && st == MCAP_READ_CORRUPT) {
        fprintf(errs, "pacctl log cat: %s is corrupt at byte %" PRIu64 ": %s\n", path,
                rd.rd.error_offset, rd.rd.error);
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
            "       pacctl log plot [-o OUT.png] [--compare OTHER.mcap] EPISODE.mcap\n"
            "                                                    the episode as a figure (PNG)\n"
            "       pacctl log export -o OUT.hdf5 [--checkpoint CKPT]... EPISODE.mcap...\n"
            "                                                    episode logs as one HDF5 data set\n");
    return PACCTL_LOG_USAGE;
}
