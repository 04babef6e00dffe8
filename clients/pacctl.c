/* pacctl — command-line client for pacd: status, watch, episodes, e-stop,
 * and the episode-log tools (`pacctl log ...`). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "pacd_cert.h"
#include "pacctl_json.h"
#include "pacctl_log.h"
#include "pacctl_plot.h"
#ifdef PACCTL_HAVE_EXPORT
#include "pacctl_export.h"
#endif
#include "pacd_proto.h"

typedef struct {
    const char *control;
    const char *telemetry;
    int timeout_ms;
    int json;
    const char *key;            /* --key: our secret certificate (NAME_secret) */
    const char *server_key;     /* --server-key: pacd's public certificate */
    cert_t client_cert, server_cert;
} opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pacctl [--control EP] [--telemetry EP] [--timeout MS] COMMAND\n"
            "  status [--json]            state, episode, timings, counters\n"
            "  watch [--json] [--count N] telemetry as it arrives (Ctrl-C stops)\n"
            "  episode start [--max-steps N] [--task ID] [--seed S]\n"
            "  episode stop [--terminal] [--reward R]\n"
            "  hold | resume              pause / continue the running episode\n"
            "  estop | clear-estop        latched stop of the arm / release it\n"
            "  reload [CHECKPOINT]        load and check a checkpoint (default: the configured\n"
            "                             one again) and run it from the next episode on;\n"
            "                             waits up to 60 s unless --timeout is given\n"
            "  log verify [--strict] [--json] FILE\n"
            "  log cat FILE               steps as JSON lines\n"
            "  log plot [-o OUT.png] [--compare OTHER.mcap] EPISODE.mcap\n"
            "                             joints, actions, reward, Q, flags and timing as a PNG\n"
            "  log export -o OUT.hdf5 [--checkpoint CKPT]... EPISODE.mcap...\n"
            "                             episode logs as one HDF5 data set (docs/loop.md)\n"
            "  keygen NAME                write a CURVE key pair: NAME (public certificate)\n"
            "                             and NAME_secret (mode 0600)\n"
            "Defaults: --control tcp://127.0.0.1:5558 --telemetry tcp://127.0.0.1:5557\n"
            "(or $PACD_CONTROL, $PACD_TELEMETRY); --timeout 3000.\n"
            "CURVE (docs/security.md): --key SECRET_CERT --server-key PUBLIC_CERT\n"
            "(or $PACD_KEY, $PACD_SERVER_KEY): this client's NAME_secret and pacd's public\n"
            "certificate.\n");
}

static const char *state_name(Pacd__V1__State s)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&pacd__v1__state__descriptor, s);
    return v ? v->name : "UNKNOWN";
}

static void print_telemetry(const Pacd__V1__Telemetry *t, int json)
{
    if (json) {
        json_t *o = pacctl_message_to_json(&t->base);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    printf("state      %s%s%s\n", state_name(t->state), t->fault && t->fault[0] ? ": " : "",
           t->fault ? t->fault : "");
    printf("robot      %s (%s)   checkpoint sha256 %.16s...\n", t->robot, t->backend,
           t->checkpoint_sha256);
    if (t->reloads || t->reloads_failed || (t->reload_pending_sha256 && t->reload_pending_sha256[0]))
        printf("reloads    %llu  refused %llu%s%.16s%s%s%s\n", (unsigned long long)t->reloads,
               (unsigned long long)t->reloads_failed,
               t->reload_pending_sha256[0] ? "  waiting for the episode to end: sha256 " : "",
               t->reload_pending_sha256, t->reload_pending_sha256[0] ? "..." : "",
               t->reload_error[0] ? "  last refused: " : "", t->reload_error);
    printf("episode    %s  step %llu  (episodes %llu)\n", t->episode_id[0] ? t->episode_id : "-",
           (unsigned long long)t->step, (unsigned long long)t->episodes);
    printf("ticks      %llu  deadline misses %llu  stale steps %llu\n",
           (unsigned long long)t->tick_count, (unsigned long long)t->deadline_misses,
           (unsigned long long)t->stale_steps);
    if (t->realtime)
        printf("loop       %s priority %u\n", t->sched_policy, t->sched_priority);
    else
        printf("loop       NOT real-time (%s): deadlines may be missed under load\n",
               t->sched_policy && t->sched_policy[0] ? t->sched_policy : "SCHED_OTHER");
#define PCT(name, p)                                                                         \
    if (p)                                                                                   \
        printf("%-10s p50 %u us  p99 %u us  max %u us\n", name, (p)->p50_us, (p)->p99_us,   \
               (p)->max_us);
    PCT("period", t->period);
    PCT("lateness", t->lateness);
    PCT("inference", t->inference);
    PCT("tick work", t->loop);
#undef PCT
    printf("frames     received %llu  dropped %llu (malformed %llu, oversized %llu, "
           "mis-shaped %llu)\n",
           (unsigned long long)t->frames_received, (unsigned long long)t->frames_dropped,
           (unsigned long long)t->frames_malformed, (unsigned long long)t->frames_oversized,
           (unsigned long long)t->frames_misshaped);
    printf("safety     holds %llu  clamps %llu   log: steps written %llu, dropped %llu\n",
           (unsigned long long)t->safety_holds, (unsigned long long)t->safety_clamps,
           (unsigned long long)t->log_steps_written, (unsigned long long)t->log_steps_dropped);
    if (t->insecure)
        printf("security   INSECURE: tcp endpoints without CURVE ([security] insecure = true)\n");
    else
        printf("security   %s   admitted %llu  denied %llu (unknown key %llu, wrong role %llu, "
               "handshake failed %llu)\n", t->curve ? "CURVE" : "local only (no CURVE)",
               (unsigned long long)t->auth_admitted, (unsigned long long)t->auth_denied,
               (unsigned long long)t->auth_denied_unknown_key,
               (unsigned long long)t->auth_denied_wrong_role,
               (unsigned long long)t->auth_handshake_failed);
    printf("action    ");
    for (size_t i = 0; i < t->n_last_action; i++)
        printf(" %+.4f", t->last_action[i]);
    printf("\n");
    if (t->has_q_value)
        printf("Q          %.4f\n", t->q_value);
    if (t->log_path && t->log_path[0])
        printf("log        %s\n", t->log_path);
}

/* CURVE client options from --key / --server-key; 0 or -1 (printed). */
static int set_curve(const opts_t *o, void *s)
{
    if (!o->key)
        return 0;
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, o->server_cert.public_key, CERT_KEY_BYTES) ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, o->client_cert.public_key, CERT_KEY_BYTES) ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, o->client_cert.secret_key, CERT_KEY_BYTES)) {
        fprintf(stderr, "pacctl: cannot use CURVE: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static int keygen(const char *name)
{
    cert_t c;
    char err[512];
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    if (!*base) {
        fprintf(stderr, "pacctl keygen: give a file name, e.g. pacctl keygen operator-alice\n");
        return 2;
    }
    if (cert_generate(name, base, &c, err, sizeof err) != 0) {
        fprintf(stderr, "pacctl keygen: %s\n", err);
        return 1;
    }
    printf("public key %s\n"
           "wrote %s (public certificate: copy it into pacd's allow-list directory, or give\n"
           "      it to clients as --server-key when this is pacd's own key)\n"
           "wrote %s_secret (mode 0600: keep it on this machine; clients use it as --key,\n"
           "      pacd as [security] server_secret_key)\n", c.public_z85, name, name);
    memset(&c, 0, sizeof c);
    return 0;
}

static int request(const opts_t *o, const Pacd__V1__Command *cmd)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &o->timeout_ms, sizeof o->timeout_ms);
    int rc = 1;
    if (set_curve(o, s) != 0)
        goto out;
    if (zmq_connect(s, o->control) != 0) {
        fprintf(stderr, "pacctl: cannot connect to %s: %s\n", o->control,
                zmq_strerror(zmq_errno()));
        goto out;
    }
    size_t n = pacd__v1__command__get_packed_size(cmd);
    uint8_t *buf = malloc(n ? n : 1);
    pacd__v1__command__pack(cmd, buf);
    zmq_send(s, buf, n, 0);
    free(buf);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
        fprintf(stderr, "pacd did not answer at %s within %d ms: is it running? "
                "(systemctl status pacd)%s\n", o->control, o->timeout_ms,
                o->key ? "; is this key in pacd's operator_keys and --server-key pacd's "
                         "public certificate?"
                       : "; if pacd uses CURVE, give --key and --server-key");
        zmq_msg_close(&m);
        goto out;
    }
    Pacd__V1__Reply *r = pacd__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    if (!r) {
        fprintf(stderr, "pacctl: the answer from %s is not a pacd.v1.Reply\n", o->control);
        goto out;
    }
    if (o->json && cmd->type == PACD__V1__COMMAND__TYPE__STATUS && r->status) {
        print_telemetry(r->status, 1); /* status --json: the Telemetry alone */
    } else if (o->json) {
        json_t *j = pacctl_message_to_json(&r->base);
        char *txt = json_dumps(j, JSON_COMPACT);
        printf("%s\n", txt);
        free(txt);
        json_decref(j);
    } else if (!r->ok) {
        fprintf(stderr, "pacd refused: %s\n", r->error);
    } else if (cmd->type == PACD__V1__COMMAND__TYPE__STATUS) {
        if (r->status)
            print_telemetry(r->status, 0);
    } else if (r->message && r->message[0]) {
        printf("ok: %s\n", r->message);
    } else {
        printf("ok: %s%s%s\n", r->status ? state_name(r->status->state) : "",
               r->episode_id && r->episode_id[0] ? ", episode " : "",
               r->episode_id ? r->episode_id : "");
        if (r->log_path && r->log_path[0] && cmd->type == PACD__V1__COMMAND__TYPE__END_EPISODE)
            printf("log: %s\n", r->log_path);
    }
    rc = r->ok ? 0 : 1;
    pacd__v1__reply__free_unpacked(r, NULL);
out:
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int watch(const opts_t *o, long count)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0, timeout = 500;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "telemetry", 9);
    if (set_curve(o, s) != 0 || zmq_connect(s, o->telemetry) != 0) {
        fprintf(stderr, "pacctl: cannot connect to %s\n", o->telemetry);
        return 1;
    }
    signal(SIGINT, on_sigint);
    long got = 0;
    int waited_ms = 0;
    while (!interrupted && (count <= 0 || got < count)) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, s, 0) < 0) {
            zmq_msg_close(&topic);
            waited_ms += timeout;
            if (waited_ms >= o->timeout_ms && got == 0) {
                fprintf(stderr, "pacctl: no telemetry from %s within %d ms: is pacd running?\n",
                        o->telemetry, o->timeout_ms);
                break;
            }
            continue;
        }
        int more = zmq_msg_more(&topic);
        zmq_msg_close(&topic);
        if (!more)
            continue;
        zmq_msg_init(&body);
        if (zmq_msg_recv(&body, s, 0) < 0) {
            zmq_msg_close(&body);
            continue;
        }
        Pacd__V1__Telemetry *t =
            pacd__v1__telemetry__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
        zmq_msg_close(&body);
        if (!t)
            continue;
        waited_ms = 0;
        if (!o->json)
            printf("---\n");
        print_telemetry(t, o->json);
        fflush(stdout);
        pacd__v1__telemetry__free_unpacked(t, NULL);
        got++;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return got > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    opts_t o = {
        .control = getenv("PACD_CONTROL") ? getenv("PACD_CONTROL") : "tcp://127.0.0.1:5558",
        .telemetry = getenv("PACD_TELEMETRY") ? getenv("PACD_TELEMETRY") : "tcp://127.0.0.1:5557",
        .timeout_ms = 3000,
        .key = getenv("PACD_KEY") && *getenv("PACD_KEY") ? getenv("PACD_KEY") : NULL,
        .server_key = getenv("PACD_SERVER_KEY") && *getenv("PACD_SERVER_KEY")
                          ? getenv("PACD_SERVER_KEY") : NULL,
    };
    int i = 1, timeout_given = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--control") && i + 1 < argc) {
            o.control = argv[++i];
        } else if (!strcmp(argv[i], "--telemetry") && i + 1 < argc) {
            o.telemetry = argv[++i];
        } else if (!strcmp(argv[i], "--key") && i + 1 < argc) {
            o.key = argv[++i];
        } else if (!strcmp(argv[i], "--server-key") && i + 1 < argc) {
            o.server_key = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            o.timeout_ms = atoi(argv[++i]);
            timeout_given = 1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
#ifdef PACCTL_HAVE_EXPORT
    if (!strcmp(cmd, "log") && i + 1 < argc && !strcmp(argv[i + 1], "export"))
        return pacctl_export_main(argc - i, argv + i);
#endif
    if (!strcmp(cmd, "log") && i + 1 < argc && !strcmp(argv[i + 1], "plot"))
        return pacctl_plot_main(argc - i, argv + i);
    if (!strcmp(cmd, "log"))
        return pacctl_log_main(argc - i, argv + i);
    if (!strcmp(cmd, "keygen")) {
        if (argc - i != 2) {
            usage(stderr);
            return 2;
        }
        return keygen(argv[i + 1]);
    }
    if (!o.key != !o.server_key) {
        fprintf(stderr, "pacctl: --key and --server-key go together (this client's NAME_secret "
                "and pacd's public certificate)\n");
        return 2;
    }
    if (o.key) {
        char err[1024];
        if (!zmq_has("curve")) {
            fprintf(stderr, "pacctl: this libzmq has no CURVE support: --key cannot be used\n");
            return 1;
        }
        if (cert_load(o.key, 1, &o.client_cert, err, sizeof err) != 0 ||
            cert_load(o.server_key, 0, &o.server_cert, err, sizeof err) != 0) {
            fprintf(stderr, "pacctl: %s\n", err);
            return 1;
        }
    }

    Pacd__V1__Command c;
    pacd__v1__command__init(&c);
    char client[128];
    char host[64] = "?";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(client, sizeof client, "pacctl@%s", host);
    c.client = client;
    long count = 0;
    char ckpt[PATH_MAX];
    /* options after the command word */
    const char *sub = NULL;
    for (int k = i + 1; k < argc; k++) {
        if (!strcmp(argv[k], "--json"))
            o.json = 1;
        else if (!strcmp(argv[k], "--terminal"))
            c.is_terminal = 1;
        else if (!strcmp(argv[k], "--max-steps") && k + 1 < argc)
            c.max_steps = strtoull(argv[++k], NULL, 10);
        else if (!strcmp(argv[k], "--task") && k + 1 < argc) {
            c.task_id = atoi(argv[++k]);
            c.has_task_id = 1;
        }
        else if (!strcmp(argv[k], "--seed") && k + 1 < argc) {
            const char *s = argv[++k];
            char *end = NULL;
            errno = 0;
            c.seed = strtoull(s, &end, 10);
            if (s[0] < '0' || s[0] > '9' || *end || errno) {
                fprintf(stderr, "pacctl: --seed takes an integer 0..2^63-1, not '%s'\n", s);
                return 2;
            }
            c.has_seed = 1;
        }
        else if (!strcmp(argv[k], "--reward") && k + 1 < argc)
            c.final_reward = strtof(argv[++k], NULL);
        else if (!strcmp(argv[k], "--count") && k + 1 < argc)
            count = strtol(argv[++k], NULL, 10);
        else if (!sub && argv[k][0] != '-')
            sub = argv[k];
        else {
            fprintf(stderr, "pacctl: unexpected argument '%s'\n", argv[k]);
            usage(stderr);
            return 2;
        }
    }
    if (!strcmp(cmd, "status")) {
        c.type = PACD__V1__COMMAND__TYPE__STATUS;
    } else if (!strcmp(cmd, "watch")) {
        return watch(&o, count);
    } else if (!strcmp(cmd, "episode") && sub && !strcmp(sub, "start")) {
        c.type = PACD__V1__COMMAND__TYPE__START_EPISODE;
    } else if (!strcmp(cmd, "episode") && sub && !strcmp(sub, "stop")) {
        c.type = PACD__V1__COMMAND__TYPE__END_EPISODE;
    } else if (!strcmp(cmd, "hold")) {
        c.type = PACD__V1__COMMAND__TYPE__HOLD;
    } else if (!strcmp(cmd, "resume")) {
        c.type = PACD__V1__COMMAND__TYPE__RESUME;
    } else if (!strcmp(cmd, "estop")) {
        c.type = PACD__V1__COMMAND__TYPE__ESTOP;
    } else if (!strcmp(cmd, "clear-estop")) {
        c.type = PACD__V1__COMMAND__TYPE__CLEAR_ESTOP;
    } else if (!strcmp(cmd, "reload")) {
        c.type = PACD__V1__COMMAND__TYPE__RELOAD;
        if (sub && sub[0] != '/' && !realpath(sub, ckpt)) {
            fprintf(stderr, "pacctl: reload %s: %s; give the checkpoint's absolute path on "
                    "pacd's host\n", sub, strerror(errno));
            return 2;
        }
        c.checkpoint = sub && sub[0] != '/' ? ckpt : (char *)(sub ? sub : "");
        if (!timeout_given)  /* loading a large checkpoint takes a while */
            o.timeout_ms = 60000;
    } else {
        usage(stderr);
        return 2;
    }
    return request(&o, &c);
}
