/* pacd-replay — recorded robosuite demonstrations as live input for pacd.
 *
 * Reads one episode of a robosuite 0.1 demo.hdf5 (libhdf5), replays each
 * recorded state through MuJoCo (qpos/qvel from the state row, mj_forward),
 * renders the chosen cameras offscreen (EGL) and publishes, per state, over
 * ZeroMQ PUB sockets that CONNECT to pacd's ingest endpoints:
 *   camera endpoint: [b"camera/<name>", CameraFrame] per camera (RGB8);
 *   state endpoint:  [b"robot_state", RobotState] (Sawyer's 7 joints,
 *                    gripper opening, grip_site pose in the base frame),
 *                    [b"teleop_action", Action] (the human's command of that
 *                    step: 7 joint velocities rad/s + gripper, space
 *                    JOINT_VELOCITY_GRIPPER; gripper = -gripper_actuation, as
 *                    robosuite's -1 is open and pacd's +1 is open),
 *                    [b"reward", Reward] (Lift: 1 when the cube is > 0.04 m
 *                    above the table, else 0).
 * All messages of one state carry the same time (now, CLOCK_REALTIME) and
 * seq (1 for the first state published, then +1: the row index + 1 unless
 * --first-state skips rows); the robot state is sent last (--state-lag-us after
 * the rest), as it commits a step in pacd's shadow mode.
 * --lockstep CONTROL_EP: before each state, ask pacd (Command STATUS on its
 * REP socket) until its frames_received + frames_dropped show the state's
 * camera frames handled (a frame it refused is counted as rejected), and
 * after it, until its tick_count shows the step made from that state, so a
 * pacd that falls behind (a loaded machine, a sanitizer build) loses no
 * recorded state and every step carries its own frame: the way to turn
 * demonstrations into a complete dataset. After a timeout the targets are
 * taken again from pacd's status; three states in a row whose frames pacd
 * never saw stop the run (a wrong camera endpoint).
 * See docs/mujoco.md. */
#include <errno.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hal_robot.h"
#include "hal_mujoco_util.h"
#include "pacd_cert.h"
#include "pacd_proto.h"
#include "rt_clock.h"

#define MAX_CAMERAS 8

typedef struct {
    const char *demo;
    int episode;
    const char *cameras;
    int width, height;
    double rate_hz; /* 0 = recorded, < 0 = as fast as possible */
    const char *camera_endpoint, *state_endpoint;
    int loop;
    long max_states;        /* stop after this many states, 0 = no limit */
    int first_state;        /* the row the replay starts at (0 = the first) */
    int connect_wait_ms;
    int state_lag_us;
    const char *robot;
    const char *lockstep;   /* pacd's control endpoint, or NULL */
    int lockstep_timeout_ms;
    const char *key, *server_key; /* CURVE: our NAME_secret, pacd's public certificate */
} replay_opts_t;

/* The ZeroMQ context and, with --key, the CURVE keys every socket uses. */
typedef struct {
    void *ctx;
    int curve;
    cert_t client, server;
} net_t;

typedef struct {
    int rows, cols;
    double *data;
} matrix_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pacd-replay --demo FILE [--episode N] [--cameras agentview[,..]]\n"
            "                   [--size WxH] [--rate HZ|recorded|max] [--camera-endpoint EP]\n"
            "                   [--state-endpoint EP] [--robot sawyer] [--connect-wait-ms MS]\n"
            "                   [--state-lag-us US] [--loop] [--first-state ROW] [--max-states N]\n"
            "                   [--lockstep CONTROL_EP [--lockstep-timeout-ms MS]]\n"
            "                   [--key SECRET_CERT --server-key PUBLIC_CERT]\n"
            "Replays a robosuite demo.hdf5 episode through MuJoCo and publishes camera\n"
            "frames, robot states, the human's actions and the Lift reward over ZeroMQ.\n"
            "Defaults: episode 1, cameras agentview, 128x128, rate 20 Hz (one recorded\n"
            "state per 50 ms tick), endpoints tcp://127.0.0.1:5555 (cameras) and\n"
            "tcp://127.0.0.1:5556 (state), connect wait 500 ms, state lag 2000 us (the\n"
            "robot state, which commits a step in pacd's shadow mode, goes last).\n"
            "--first-state ROW: start at recorded state ROW (0-based; a --loop starts\n"
            "again at row 0); seq still counts the states sent from 1.\n"
            "--max-states N: stop after N states (with --loop, N in all).\n"
            "--lockstep: before each state, wait until pacd has handled its camera\n"
            "frames, and after it, until pacd in shadow mode has made the step from it\n"
            "(its status on the control endpoint; each wait up to --lockstep-timeout-ms,\n"
            "default 2000), so no state or frame is lost when pacd falls behind. Frames\n"
            "pacd refused, late frames or steps: exit 3 (counted in the JSON summary).\n"
            "--key/--server-key: CURVE (docs/security.md): this publisher's NAME_secret\n"
            "(its public certificate in pacd's publisher_keys, and in operator_keys too\n"
            "for --lockstep) and pacd's public certificate.\n");
}

/* Read a 2-D float64 dataset (1-D read as N x 1). */
static int read_matrix(hid_t file, const char *path, matrix_t *out)
{
    memset(out, 0, sizeof *out);
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) {
        fprintf(stderr, "pacd-replay: the demo has no dataset %s; is it a robosuite demo.hdf5?\n",
                path);
        return -ENOENT;
    }
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 1};
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[0] == 0 ||
        dims[0] > 10000000 || dims[1] > 4096) {
        fprintf(stderr, "pacd-replay: dataset %s has an unexpected shape\n", path);
        H5Sclose(sp);
        H5Dclose(ds);
        return -EINVAL;
    }
    if (nd == 1)
        dims[1] = 1;
    out->rows = (int)dims[0];
    out->cols = (int)dims[1];
    out->data = malloc(sizeof(double) * dims[0] * (dims[1] ? dims[1] : 1));
    int rc = 0;
    if (!out->data ||
        H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0) {
        fprintf(stderr, "pacd-replay: cannot read dataset %s\n", path);
        free(out->data);
        out->data = NULL;
        rc = -EIO;
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

/* String attribute (fixed or variable length) into buf. */
static int read_string_attr(hid_t obj, const char *name, char *buf, size_t cap)
{
    if (H5Aexists(obj, name) <= 0)
        return -ENOENT;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    int rc = -EINVAL;
    if (H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(buf, cap, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(t);
            char *s = calloc(n + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (s && H5Aread(a, mt, s) >= 0) {
                snprintf(buf, cap, "%s", s);
                rc = 0;
            }
            H5Tclose(mt);
            free(s);
        }
    }
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* CURVE client options when --key was given; 0 or -1 (printed). */
static int set_curve(const net_t *net, void *s)
{
    if (!net->curve)
        return 0;
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, net->server.public_key, CERT_KEY_BYTES) ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, net->client.public_key, CERT_KEY_BYTES) ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, net->client.secret_key, CERT_KEY_BYTES)) {
        fprintf(stderr, "pacd-replay: cannot use CURVE: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static void *connect_pub(const net_t *net, const char *ep)
{
    void *s = zmq_socket(net->ctx, ZMQ_PUB);
    if (!s || set_curve(net, s) != 0) {
        if (s)
            zmq_close(s);
        return NULL;
    }
    int linger = 1000, hwm = 1000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, "pacd-replay: cannot connect to %s: %s; give an endpoint like "
                        "tcp://127.0.0.1:5555\n",
                ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* pacd's counters lockstep follows (its Telemetry, as STATUS returns it). */
typedef struct {
    uint64_t ticks;      /* tick_count: one per step */
    uint64_t received;   /* frames_received: frames it accepted */
    uint64_t handled;    /* frames_received + frames_dropped: frames it accepted or
                            refused (malformed, oversized, mis-shaped); frames lost
                            before that (no connection yet, a full receive queue, a
                            message over max_message_bytes) are in neither */
} pacd_counts_t;

/* Lockstep with pacd: its counters from a STATUS command on its control (REP)
 * endpoint. *req is a REQ socket, reopened after a timeout (a REQ socket that
 * missed its reply cannot send again). Returns 0 and fills *c, or -1 (no
 * answer within timeout_ms, or not a pacd.v1.Reply). */
static int pacd_counts(const net_t *net, const char *ep, void **req, int timeout_ms,
                       pacd_counts_t *c)
{
    if (!*req) {
        *req = zmq_socket(net->ctx, ZMQ_REQ);
        int linger = 0;
        zmq_setsockopt(*req, ZMQ_LINGER, &linger, sizeof linger);
        if (set_curve(net, *req) != 0 || zmq_connect(*req, ep) != 0) {
            fprintf(stderr, "pacd-replay: cannot connect to pacd's control endpoint %s: %s\n",
                    ep, zmq_strerror(zmq_errno()));
            zmq_close(*req);
            *req = NULL;
            return -1;
        }
    }
    zmq_setsockopt(*req, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    Pacd__V1__Command cmd = PACD__V1__COMMAND__INIT;
    cmd.type = PACD__V1__COMMAND__TYPE__STATUS;
    cmd.client = "pacd-replay";
    uint8_t buf[64];
    size_t n = pacd__v1__command__get_packed_size(&cmd);
    if (n > sizeof buf)
        return -1;
    pacd__v1__command__pack(&cmd, buf);
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = -1;
    if (zmq_send(*req, buf, n, 0) == (int)n && zmq_msg_recv(&m, *req, 0) >= 0) {
        Pacd__V1__Reply *r = pacd__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (r && r->status) {
            c->ticks = r->status->tick_count;
            c->received = r->status->frames_received;
            c->handled = r->status->frames_received + r->status->frames_dropped;
            rc = 0;
        }
        if (r)
            pacd__v1__reply__free_unpacked(r, NULL);
    }
    zmq_msg_close(&m);
    if (rc != 0) {
        zmq_close(*req);
        *req = NULL;
    }
    return rc;
}

/* Wait until pacd's tick_count reaches want_ticks and its handled frames reach
 * want_handled, or timeout_ms passes. *last gets the last answer (unchanged
 * when there was none). Returns 1 when they did, 0 when not (pacd idle, gone,
 * too slow, a frame lost on the way, or Ctrl-C). */
static int lockstep_wait(const net_t *net, const char *ep, void **req, int timeout_ms,
                         uint64_t want_ticks, uint64_t want_handled, pacd_counts_t *last)
{
    int64_t deadline = rt_clock_mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int64_t left_ms = (deadline - rt_clock_mono_ns()) / 1000000;
        if (left_ms <= 0 || stop_requested)
            return 0;
        pacd_counts_t c;
        if (pacd_counts(net, ep, req, (int)left_ms, &c) == 0) {
            *last = c;
            if (c.ticks >= want_ticks && c.handled >= want_handled)
                return 1;
        }
        /* each STATUS makes pacd's service thread build its telemetry: poll
         * gently, pacd may be a sanitizer build on a small machine */
        rt_clock_sleep_ns(1000000);
    }
}

static int parse_args(int argc, char **argv, replay_opts_t *o)
{
    *o = (replay_opts_t){.episode = 1, .cameras = "agentview", .width = 128, .height = 128,
                         .rate_hz = 20, .camera_endpoint = "tcp://127.0.0.1:5555",
                         .state_endpoint = "tcp://127.0.0.1:5556", .connect_wait_ms = 500,
                         .state_lag_us = 2000, .robot = "sawyer",
                         .lockstep_timeout_ms = 2000};
    static const struct option longopts[] = {
        {"demo", required_argument, NULL, 'd'},
        {"episode", required_argument, NULL, 'e'},
        {"cameras", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"camera-endpoint", required_argument, NULL, 'C'},
        {"state-endpoint", required_argument, NULL, 'S'},
        {"robot", required_argument, NULL, 'R'},
        {"connect-wait-ms", required_argument, NULL, 'w'},
        {"state-lag-us", required_argument, NULL, 'L'},
        {"loop", no_argument, NULL, 'l'},
        {"max-states", required_argument, NULL, 'N'},
        {"first-state", required_argument, NULL, 'F'},
        {"lockstep", required_argument, NULL, 'K'},
        {"lockstep-timeout-ms", required_argument, NULL, 'T'},
        {"key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->demo = optarg; break;
        case 'e':
            o->episode = (int)strtol(optarg, &end, 10);
            if (*end || o->episode < 1) {
                fprintf(stderr, "pacd-replay: --episode wants a number >= 1 (demo_N)\n");
                return -1;
            }
            break;
        case 'c': o->cameras = optarg; break;
        case 's':
            if (sscanf(optarg, "%dx%d", &o->width, &o->height) != 2 || o->width < 1 ||
                o->height < 1 || o->width > 4096 || o->height > 4096) {
                fprintf(stderr, "pacd-replay: --size wants WxH, e.g. 128x128\n");
                return -1;
            }
            break;
        case 'r':
            if (strcmp(optarg, "recorded") == 0)
                o->rate_hz = 0;
            else if (strcmp(optarg, "max") == 0)
                o->rate_hz = -1;
            else {
                o->rate_hz = strtod(optarg, &end);
                if (*end || !(o->rate_hz > 0 && o->rate_hz <= 10000)) {
                    fprintf(stderr, "pacd-replay: --rate wants a rate in Hz (0..10000], "
                                    "'recorded' or 'max'\n");
                    return -1;
                }
            }
            break;
        case 'C': o->camera_endpoint = optarg; break;
        case 'S': o->state_endpoint = optarg; break;
        case 'R': o->robot = optarg; break;
        case 'w':
            o->connect_wait_ms = (int)strtol(optarg, &end, 10);
            if (*end || o->connect_wait_ms < 0 || o->connect_wait_ms > 60000) {
                fprintf(stderr, "pacd-replay: --connect-wait-ms wants 0..60000\n");
                return -1;
            }
            break;
        case 'L':
            o->state_lag_us = (int)strtol(optarg, &end, 10);
            if (*end || o->state_lag_us < 0 || o->state_lag_us > 999999) {
                fprintf(stderr, "pacd-replay: --state-lag-us wants 0..999999\n");
                return -1;
            }
            break;
        case 'l': o->loop = 1; break;
        case 'N':
            o->max_states = strtol(optarg, &end, 10);
            if (*end || o->max_states < 1) {
                fprintf(stderr, "pacd-replay: --max-states wants a positive count\n");
                return -1;
            }
            break;
        case 'F':
            o->first_state = (int)strtol(optarg, &end, 10);
            if (*end || !*optarg || o->first_state < 0) {
                fprintf(stderr, "pacd-replay: --first-state wants a row index >= 0\n");
                return -1;
            }
            break;
        case 'K': o->lockstep = optarg; break;
        case 'T':
            o->lockstep_timeout_ms = (int)strtol(optarg, &end, 10);
            if (*end || o->lockstep_timeout_ms < 1 || o->lockstep_timeout_ms > 600000) {
                fprintf(stderr, "pacd-replay: --lockstep-timeout-ms wants 1..600000\n");
                return -1;
            }
            break;
        case 'k': o->key = optarg; break;
        case 'P': o->server_key = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (!o->demo) {
        fprintf(stderr, "pacd-replay: --demo FILE is required\n");
        usage(stderr);
        return -1;
    }
    if (!o->key != !o->server_key) {
        fprintf(stderr, "pacd-replay: --key and --server-key go together (this publisher's "
                "NAME_secret and pacd's public certificate)\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    replay_opts_t o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    const hal_robot_t *robot = hal_robot_find(o.robot);
    if (!robot) {
        fprintf(stderr, "pacd-replay: unknown robot '%s'; use sawyer\n", o.robot);
        return 2;
    }

    int rc = 1;
    hid_t file = -1;
    matrix_t states = {0}, jv = {0}, grip = {0};
    mjModel *m = NULL;
    mjData *d = NULL;
    hal_mjrender_t *rend = NULL;
    void *zctx = NULL, *cam_sock = NULL, *state_sock = NULL, *req = NULL;
    net_t net = {0};
    uint8_t *rgb = NULL, *pack = NULL;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our own messages */
    file = H5Fopen(o.demo, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "pacd-replay: cannot open %s as HDF5; give a robosuite demo.hdf5\n",
                o.demo);
        goto out;
    }
    char group[64], path[128], model_file[256] = "", env[64] = "";
    snprintf(group, sizeof group, "data/demo_%d", o.episode);
    if (H5Lexists(file, "data", H5P_DEFAULT) <= 0 || H5Lexists(file, group, H5P_DEFAULT) <= 0) {
        fprintf(stderr, "pacd-replay: %s has no episode %s; pick another --episode\n", o.demo,
                group);
        goto out;
    }
    hid_t data = H5Gopen2(file, "data", H5P_DEFAULT);
    read_string_attr(data, "env", env, sizeof env);
    H5Gclose(data);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    int have_model = read_string_attr(g, "model_file", model_file, sizeof model_file) == 0;
    H5Gclose(g);
    if (!have_model || strchr(model_file, '/')) {
        fprintf(stderr, "pacd-replay: %s has no usable model_file attribute\n", group);
        goto out;
    }
    snprintf(path, sizeof path, "%s/states", group);
    if (read_matrix(file, path, &states) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/joint_velocities", group);
    if (read_matrix(file, path, &jv) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/gripper_actuations", group);
    if (read_matrix(file, path, &grip) != 0)
        goto out;
    if (jv.rows != states.rows || grip.rows != states.rows || jv.cols != robot->n_joints ||
        grip.cols < 1) {
        fprintf(stderr, "pacd-replay: %s: states (%d), joint_velocities (%d x %d) and "
                        "gripper_actuations (%d) disagree\n",
                group, states.rows, jv.rows, jv.cols, grip.rows);
        goto out;
    }
    if (o.first_state >= states.rows) {
        fprintf(stderr, "pacd-replay: --first-state %d: %s has %d states (rows 0..%d)\n",
                o.first_state, group, states.rows, states.rows - 1);
        goto out;
    }

    /* the scene: models/<model_file> beside the demo */
    char model_path[4096];
    const char *slash = strrchr(o.demo, '/');
    int dirlen = slash ? (int)(slash - o.demo) : 1;
    snprintf(model_path, sizeof model_path, "%.*s/models/%s", dirlen, slash ? o.demo : ".",
             model_file);
    char mjerr[512] = "";
    m = mj_loadXML(model_path, NULL, mjerr, sizeof mjerr);
    if (!m) {
        fprintf(stderr, "pacd-replay: cannot load the scene %s: %s\n", model_path, mjerr);
        goto out;
    }
    if (states.cols != 1 + m->nq + m->nv) {
        fprintf(stderr, "pacd-replay: states have %d columns, the scene needs 1 + nq %d + nv %d\n",
                states.cols, m->nq, m->nv);
        goto out;
    }
    d = mj_makeData(m);
    hal_mjmap_t map;
    char err[512];
    if (!d || hal_mjmap_init(&map, m, robot, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "pacd-replay: %s\n", d ? err : "out of memory");
        goto out;
    }

    int n_cam = 0, cam_id[MAX_CAMERAS];
    char cam_name[MAX_CAMERAS][64];
    for (const char *p = o.cameras; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            if (n_cam == MAX_CAMERAS || len >= sizeof cam_name[0]) {
                fprintf(stderr, "pacd-replay: at most %d cameras of < 64 characters\n",
                        MAX_CAMERAS);
                goto out;
            }
            memcpy(cam_name[n_cam], p, len);
            cam_name[n_cam][len] = 0;
            cam_id[n_cam] = hal_mjrender_camera(m, cam_name[n_cam]);
            if (cam_id[n_cam] < 0) {
                fprintf(stderr, "pacd-replay: the scene has no camera '%s' (robosuite scenes "
                                "have agentview, frontview, birdview, eye_in_hand)\n",
                        cam_name[n_cam]);
                goto out;
            }
            n_cam++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n_cam > 0) {
        rend = hal_mjrender_new(m, o.width, o.height, err, sizeof err);
        if (!rend) {
            fprintf(stderr, "pacd-replay: %s\n", err);
            goto out;
        }
    }
    size_t pack_cap = (size_t)o.width * o.height * 3 + 256;
    rgb = malloc((size_t)o.width * o.height * 3);
    pack = malloc(pack_cap);
    zctx = zmq_ctx_new();
    if (!rgb || !pack || !zctx)
        goto out;
    net.ctx = zctx;
    if (o.key) {
        char kerr[1024];
        if (cert_load(o.key, 1, &net.client, kerr, sizeof kerr) != 0 ||
            cert_load(o.server_key, 0, &net.server, kerr, sizeof kerr) != 0) {
            fprintf(stderr, "pacd-replay: %s\n", kerr);
            goto out;
        }
        net.curve = 1;
    }
    if (!(cam_sock = connect_pub(&net, o.camera_endpoint)) ||
        !(state_sock = connect_pub(&net, o.state_endpoint)))
        goto out;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* PUB/SUB slow joiner: give the connections time before the first state */
    rt_clock_sleep_ns((int64_t)o.connect_wait_ms * 1000000);

    double rec_dt = states.rows > 1 ? states.data[states.cols] - states.data[0] : 0.01;
    if (!(rec_dt > 0 && rec_dt < 10))
        rec_dt = 0.01;
    double period_s = o.rate_hz > 0 ? 1.0 / o.rate_hz : o.rate_hz == 0 ? rec_dt : 0.0;
    int64_t period_ns = llround(period_s * 1e9);
    fprintf(stderr, "pacd-replay: %s (%s) %s: %d states recorded every %.3f s, publishing at %s\n",
            o.demo, env[0] ? env : "?", group, states.rows, rec_dt,
            period_ns > 0 ? "a fixed rate" : "full speed");

    uint64_t seq = 0, frame_seq = 0;
    long published = 0, frames = 0, unacknowledged = 0, frames_unacknowledged = 0;
    long frames_rejected = 0;
    /* lockstep targets in pacd's own counters, taken from its status at the
     * start and again after any timeout (a late frame or step must not leave
     * the targets one behind for the rest of the run) */
    pacd_counts_t now_c = {0};
    uint64_t want_ticks = 0, want_handled = 0, dropped = 0;
    int resync = 1, stuck = 0, aborted = 0;   /* resync: no valid targets */
    /* the first answer also waits for the TCP connection: at least 1 s */
    const int first_ms = o.lockstep_timeout_ms > 1000 ? o.lockstep_timeout_ms : 1000;
    if (o.lockstep && pacd_counts(&net, o.lockstep, &req, first_ms, &now_c) != 0) {
        fprintf(stderr, "pacd-replay: --lockstep: pacd did not answer at %s within %d ms\n",
                o.lockstep, first_ms);
        goto out;
    }
    double height = NAN;
    /* the pace's origin: state k goes out at t + k periods, never earlier
     * (start_unix_ns in the summary: the wall clock just before t) */
    const int64_t start_unix_ns = rt_clock_unix_ns();
    int64_t t = rt_clock_mono_ns();
    int first_row = o.first_state;
    do {
        for (int row = first_row; row < states.rows && !stop_requested && !aborted &&
                          (!o.max_states || published < o.max_states);
             row++) {
            const double *s = states.data + (size_t)row * states.cols;
            d->time = s[0];
            memcpy(d->qpos, s + 1, sizeof(double) * m->nq);
            memcpy(d->qvel, s + 1 + m->nq, sizeof(double) * m->nv);
            mj_forward(m, d);
            if (period_ns > 0) {
                t += period_ns;
                while (rt_clock_sleep_until_intr(t) == -EINTR && !stop_requested)
                    ;
            }
            if (o.lockstep && resync) {
                if (pacd_counts(&net, o.lockstep, &req, o.lockstep_timeout_ms, &now_c) == 0) {
                    want_ticks = now_c.ticks;
                    want_handled = now_c.handled;
                    dropped = now_c.handled - now_c.received;
                    resync = 0;
                }
            }
            int64_t now = rt_clock_unix_ns();
            seq++;
            frame_seq++;
            int sent = 0;
            for (int c = 0; c < n_cam; c++) {
                if (hal_mjrender_rgb(rend, m, d, cam_id[c], rgb) != 0)
                    continue;
                if (hal_mjpub_camera(cam_sock, cam_name[c], o.width, o.height, rgb, now,
                                     frame_seq, pack, pack_cap) == 0)
                    sent++;
            }
            frames += sent;
            /* The robot state goes last: in pacd's shadow mode it commits the
             * step, which then carries this row's frame, action and reward.
             * Frames travel on another connection: in lockstep the state waits
             * until pacd has handled them (and a frame pacd refused counts as
             * rejected), else --state-lag-us gives them a head start. */
            int frames_late = 0;
            if (o.lockstep && sent > 0 && !resync) {
                const uint64_t handled0 = now_c.handled;
                want_handled += (uint64_t)sent;
                if (lockstep_wait(&net, o.lockstep, &req, o.lockstep_timeout_ms, 0, want_handled,
                                  &now_c)) {
                    stuck = 0;
                    if (now_c.handled - now_c.received > dropped) {
                        if (frames_rejected == 0)
                            fprintf(stderr, "pacd-replay: --lockstep: pacd refused the frame(s) "
                                            "of state %llu (see its frames_malformed / "
                                            "frames_oversized / frames_misshaped: camera name "
                                            "or --size not as its [camera] config?)\n",
                                    (unsigned long long)seq);
                        frames_rejected++;
                        dropped = now_c.handled - now_c.received;
                    }
                } else if (!stop_requested) {
                    if (frames_unacknowledged++ == 0)
                        fprintf(stderr, "pacd-replay: --lockstep: pacd did not receive the "
                                        "frame(s) of state %llu within %d ms\n",
                                (unsigned long long)seq, o.lockstep_timeout_ms);
                    frames_late = 1;
                    if (now_c.handled == handled0 && ++stuck >= 3) {
                        fprintf(stderr, "pacd-replay: --lockstep: pacd received none of the "
                                        "frames of %d states in a row: is %s pacd's camera "
                                        "endpoint? stopping\n",
                                stuck, o.camera_endpoint);
                        aborted = 1;
                        break;
                    }
                }
            }
            float act[HAL_MAX_JOINTS + 1];
            for (int j = 0; j < jv.cols; j++)
                act[j] = (float)jv.data[(size_t)row * jv.cols + j];
            act[jv.cols] = (float)-grip.data[(size_t)row * grip.cols];
            hal_mjpub_action(state_sock, "teleop_action",
                             PACD__V1__ACTION_SPACE__JOINT_VELOCITY_GRIPPER, act, jv.cols + 1, now,
                             seq);
            height = hal_mjmap_cube_height(&map, d);
            if (isfinite(height))
                hal_mjpub_reward(state_sock, height > HAL_MJ_LIFT_SUCCESS_M ? 1.0f : 0.0f, 1.0f,
                                 0, now, height);
            if (o.state_lag_us > 0 && !(o.lockstep && sent > 0))
                rt_clock_sleep_ns((int64_t)o.state_lag_us * 1000);
            hal_state_t st;
            memset(&st, 0, sizeof st);
            hal_mjmap_read(&map, m, d, robot, &st);
            st.time_unix_ns = now;
            st.time_mono_ns = rt_clock_mono_ns();
            st.seq = seq;
            hal_mjpub_state(state_sock, robot->name, &st);
            published++;
            if (o.lockstep) {
                want_ticks++;
                if (resync ||
                    !lockstep_wait(&net, o.lockstep, &req, o.lockstep_timeout_ms, want_ticks, 0,
                                   &now_c)) {
                    if (stop_requested)
                        break;
                    if (resync)   /* pacd did not answer: wait the timeout, count the state */
                        rt_clock_sleep_ns((int64_t)o.lockstep_timeout_ms * 1000000);
                    if (unacknowledged++ == 0)
                        fprintf(stderr, "pacd-replay: --lockstep: pacd made no step from state "
                                        "%llu within %d ms (is an episode running in shadow "
                                        "mode?)\n",
                                (unsigned long long)seq, o.lockstep_timeout_ms);
                    resync = 1;   /* carry on from where pacd is */
                }
                if (frames_late)   /* the late frame may still come: rebase */
                    resync = 1;
            }
        }
        first_row = 0;
    } while (o.loop && !stop_requested && !aborted && (!o.max_states || published < o.max_states));

    /* machine-readable summary on stdout */
    printf("{\"demo\": \"%s\", \"episode\": %d, \"states\": %d, \"published\": %ld, "
           "\"frames\": %ld, \"final_cube_height_m\": %.6f, \"recorded_dt_s\": %.6f, "
           "\"unacknowledged\": %ld, \"frames_unacknowledged\": %ld, "
           "\"frames_rejected\": %ld, \"stopped\": %s, \"start_unix_ns\": %lld}\n",
           o.demo, o.episode, states.rows, published, frames, isfinite(height) ? height : -1.0,
           rec_dt, unacknowledged, frames_unacknowledged, frames_rejected,
           aborted ? "true" : "false", (long long)start_unix_ns);
    fflush(stdout);
    rc = unacknowledged || frames_unacknowledged || frames_rejected || aborted ? 3 : 0;
out:
    if (req)
        zmq_close(req);
    if (cam_sock)
        zmq_close(cam_sock);
    if (state_sock)
        zmq_close(state_sock);
    if (zctx)
        zmq_ctx_term(zctx);
    hal_mjrender_destroy(&rend);
    free(rgb);
    free(pack);
    if (d)
        mj_deleteData(d);
    if (m)
        mj_deleteModel(m);
    free(states.data);
    free(jv.data);
    free(grip.data);
    if (file >= 0)
        H5Fclose(file);
    return rc;
}
