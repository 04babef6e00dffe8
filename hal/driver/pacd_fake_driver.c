/* pacd-fake-driver — a robot-side driver without a robot: the driver core
 * (driver_core.h) over the `sim` backend's kinematic arm, speaking the
 * bridge protocol (docs/bridge.md) on a ROUTER socket it binds. The stand-in
 * for CI and for trying pacd's `remote` backend without an arm.
 *
 *   pacd-fake-driver --bind ENDPOINT [--robot panda|sawyer] [--gripper]
 *                    [--state-rate-hz 250] [--protocol-version N]
 *                    [--drop-targets P] [--drop-states P] [--seed S]
 *                    [--delay-targets P] [--delay-states P] [--delay-ms MS] [--jitter-ms MS]
 *                    [--duplicate-targets P] [--duplicate-states P]
 *                    [--reorder-targets P] [--reorder-states P]
 *                    [--stall-after-ms MS] [--stall-ms MS] [--stall-every-ms MS]
 *                    [--trace FILE] [--stats] [--curve-secret-key FILE] [--curve-allow DIR]
 *                    [--insecure]
 *
 * One thread: every 1 ms (absolute CLOCK_MONOTONIC deadlines) it drains the
 * socket (handshakes, targets), steps the core and commands the sim arm with
 * the core's joint velocities; every 1/state-rate-hz s it sends the arm's
 * state to the peer that shook hands last. SIGTERM / SIGINT: exit 0.
 * Fault injection (fault_t below, --help): drop, delay, duplicate or
 * reorder that fraction of targets received / states sent, and stall the
 * link; deterministic for a seed, counted. --trace writes the commanded
 * motion of every period; --stats prints target latency and the loop's
 * lateness at exit (for bench/run_bridge_bench.sh). A real driver
 * (libfranka's callback) keeps its I/O in another thread; here the socket
 * calls never block (ZMQ_DONTWAIT). */
#include "driver_bridge.h"
#include "driver_core.h"
#include "hal.h"
#include "hal_log.h"
#include "hal_sim.h"
#include "rt_clock.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define TICK_NS 1000000LL

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

#define log_line(prio, ...) hal_log(prio, "pacd-fake-driver", __VA_ARGS__)

/* Fault injection (docs/bridge.md "Fault injection"): what happens to the
 * messages of one direction (targets received, states sent) between the
 * socket and the driver. In this order, each at its rate: a stalled link
 * passes nothing; drop; delay (fixed + uniform jitter); duplicate (a second
 * copy, delivered with the first); reorder (held back, delivered right after
 * the next one, or after at most FAULT_HOLD_MAX_NS). Delayed messages wait in
 * a queue released on the 1 ms tick. Deterministic for a seed: one PCG-style
 * generator draws every decision in message order. */
#define FAULT_QUEUE 128
#define FAULT_ITEM 1024
#define FAULT_HOLD_MAX_NS 1000000000LL

typedef struct {
    int64_t due_ns;
    size_t len;
    uint8_t data[FAULT_ITEM];
} fault_item_t;

typedef struct {
    double drop, delay, duplicate, reorder; /* rates, 0..1 */
    uint64_t dropped, delayed, duplicated, reordered, stalled;
    fault_item_t queue[FAULT_QUEUE]; /* in arrival order; due times may cross */
    int n;
    int have_held;
    fault_item_t held;
} fault_dir_t;

typedef struct {
    fault_dir_t targets, states;
    double delay_ms, jitter_ms;                   /* a delay: delay_ms + U(0, jitter_ms) */
    double stall_after_ms, stall_ms, stall_every_ms; /* stalls: from the first handshake */
    int64_t origin_ns;                            /* the first accepted handshake, 0 = none */
    uint64_t stalls;                              /* stalls begun */
    int64_t stall_index;                          /* the last stall counted */
    uint64_t rng;
} fault_t;

/* Two fault-queue directions of 128 KiB each: outside main's stack. */
static fault_t g_fault;

static double fault_uniform(fault_t *f)
{
    f->rng = f->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(f->rng >> 11) / (double)(1ULL << 53);
}

static int fault_roll(fault_t *f, double p)
{
    return p > 0 && fault_uniform(f) < p;
}

/* 1 while the link is stalled at now (no message passes either way). */
static int fault_stalled(fault_t *f, int64_t now)
{
    if (f->stall_ms <= 0 || f->origin_ns == 0)
        return 0;
    double t = (double)(now - f->origin_ns) / 1e6 - f->stall_after_ms;
    if (t < 0)
        return 0;
    int64_t k = 0;
    if (f->stall_every_ms > 0) {
        k = (int64_t)(t / f->stall_every_ms);
        t -= (double)k * f->stall_every_ms;
    } else if (t >= f->stall_ms) {
        return 0;
    }
    if (t >= f->stall_ms)
        return 0;
    if (k + 1 != f->stall_index) {
        f->stall_index = k + 1;
        f->stalls++;
        log_line(5, "fault injection: the link stalls for %g ms", f->stall_ms);
    }
    return 1;
}

static void fault_enqueue(fault_dir_t *d, const fault_item_t *it)
{
    if (d->n == FAULT_QUEUE) {
        d->dropped++; /* the "network" is full */
        return;
    }
    d->queue[d->n++] = *it;
}

/* Offer one message (len <= FAULT_ITEM bytes) of direction d at now. */
static void fault_offer(fault_t *f, fault_dir_t *d, const void *data, size_t len, int64_t now)
{
    if (fault_stalled(f, now)) {
        d->stalled++;
        return;
    }
    if (fault_roll(f, d->drop)) {
        d->dropped++;
        return;
    }
    fault_item_t it = {.due_ns = now, .len = len};
    memcpy(it.data, data, len);
    if (fault_roll(f, d->delay)) {
        d->delayed++;
        it.due_ns += llround((f->delay_ms + fault_uniform(f) * f->jitter_ms) * 1e6);
    }
    if (fault_roll(f, d->duplicate)) {
        d->duplicated++;
        fault_enqueue(d, &it);
    }
    if (!d->have_held && fault_roll(f, d->reorder)) {
        d->reordered++;
        d->have_held = 1;
        d->held = it;
        return;
    }
    fault_enqueue(d, &it);
}

/* Deliver what is due at now, earliest first, to deliver(ctx, data, len);
 * a held-back message right after the next one delivered. Nothing passes
 * while the link is stalled. */
static void fault_release(fault_t *f, fault_dir_t *d, int64_t now,
                          void (*deliver)(void *ctx, const uint8_t *data, size_t len), void *ctx)
{
    if (fault_stalled(f, now))
        return;
    for (;;) {
        int best = -1;
        for (int i = 0; i < d->n; i++)
            if (d->queue[i].due_ns <= now && (best < 0 || d->queue[i].due_ns < d->queue[best].due_ns))
                best = i;
        if (best < 0)
            break;
        fault_item_t it = d->queue[best];
        memmove(&d->queue[best], &d->queue[best + 1], (size_t)(d->n - best - 1) * sizeof it);
        d->n--;
        deliver(ctx, it.data, it.len);
        if (d->have_held && d->held.due_ns <= now) {
            d->have_held = 0;
            deliver(ctx, d->held.data, d->held.len);
        }
    }
    if (d->have_held && now - d->held.due_ns > FAULT_HOLD_MAX_NS) {
        d->have_held = 0;
        deliver(ctx, d->held.data, d->held.len);
    }
}

/* Forget what is in flight (a new session: the old peer's messages). */
static void fault_flush(fault_dir_t *d)
{
    d->dropped += (uint64_t)d->n + (uint64_t)d->have_held;
    d->n = 0;
    d->have_held = 0;
}

static uint64_t fault_dropped(const fault_t *f)
{
    return f->targets.dropped + f->states.dropped + f->targets.stalled + f->states.stalled;
}

typedef struct {
    const hal_robot_t *robot;
    hal_t *arm;
    driver_core_t core;
    driver_bridge_t bridge; /* the socket, the peer and the protocol's counters */
    uint64_t overruns;
    fault_t *fault;
    driver_output_t out;
    FILE *trace;       /* --trace: one record per control period */
    int stats;         /* --stats: latency and lateness percentiles at exit */
    int32_t *latency_us, *lateness_us; /* --stats samples */
    size_t n_latency, n_lateness;
    /* the stop in progress after stale targets: where it began and how far
     * the limits allow each joint to go */
    int stopping;
    uint64_t violations; /* periods whose command broke a limit (never, we hope) */
    int64_t stop_start_ns;
    double stop_q0[HAL_MAX_JOINTS], stop_allowed[HAL_MAX_JOINTS];
} fake_t;

static void answer_hello(fake_t *fk, const uint8_t *id, size_t id_len,
                         const Pacd__V1__DriverHello *h)
{
    const uint64_t hellos = fk->bridge.hellos;
    driver_bridge_hello(&fk->bridge, &fk->core, id, id_len, h);
    if (fk->bridge.hellos == hellos)
        return; /* refused */
    /* a new session: the old peer's targets in flight go */
    fault_flush(&fk->fault->targets);
    if (fk->fault->origin_ns == 0)
        fk->fault->origin_ns = rt_clock_mono_ns();
}

static void take_target(fake_t *fk, const uint8_t *id, size_t id_len,
                        const Pacd__V1__JointCommand *t, int64_t now)
{
    driver_target_t dt;
    if (driver_bridge_target(&fk->bridge, id, id_len, t, now, &dt) != 0)
        return;
    /* stamped with its socket receive time: a delayed target arrives aged */
    fault_offer(fk->fault, &fk->fault->targets, &dt, sizeof dt, now);
}

static void deliver_target(void *ctx, const uint8_t *data, size_t len)
{
    fake_t *fk = ctx;
    driver_target_t dt;
    if (len != sizeof dt)
        return;
    memcpy(&dt, data, sizeof dt);
    driver_core_target(&fk->core, &dt);
}

static void deliver_state(void *ctx, const uint8_t *data, size_t len)
{
    fake_t *fk = ctx;
    driver_bridge_t *b = &fk->bridge;
    if (b->peer_len == 0 ||
        zmq_send(b->sock, b->peer, b->peer_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return;
    zmq_send(b->sock, data, len, ZMQ_DONTWAIT);
}

static void send_state(fake_t *fk, int64_t now)
{
    hal_state_t st;
    if (fk->bridge.peer_len == 0 || hal_read_state(fk->arm, &st) != 0)
        return;
    driver_bridge_arm_t arm = {.n = st.n_joints, .q = st.q, .dq = st.dq,
                               .gripper_position = st.gripper_position,
                               .gripper_velocity = st.gripper_velocity, .grasp = st.grasp,
                               .time_unix_ns = st.time_unix_ns, .time_mono_ns = st.time_mono_ns};
    memcpy(arm.ee_pose, st.ee_pose, sizeof arm.ee_pose);
    driver_bridge_extra_t extra = {.overruns = fk->overruns,
                                   .messages_dropped = fault_dropped(fk->fault)};
    driver_core_counters_t c = driver_core_counters(&fk->core);
    driver_bridge_state_msg_t m;
    driver_bridge_state(&fk->bridge, &arm, fk->out.mode, fk->out.target_seq, &c, &extra, &m);
    /* packed here: the fault queue holds bytes */
    uint8_t buf[FAULT_ITEM];
    size_t len = pacd__v1__bridge_message__get_packed_size(&m.msg);
    if (len > sizeof buf)
        return;
    pacd__v1__bridge_message__pack(&m.msg, buf);
    fault_offer(fk->fault, &fk->fault->states, buf, len, now);
}

/* --trace: a header, then per control period
 * {int64 t_ns; uint32 mode; uint32 flags; uint64 target_seq; double q[n], dq[n], ddq[n]}
 * (native byte order; flags bit 0: the newest target is a hold, bit 1: moving). */
#define TRACE_MAGIC "PACDDRV1"

static void trace_header(fake_t *fk)
{
    uint32_t n = (uint32_t)fk->robot->n_joints;
    fwrite(TRACE_MAGIC, 1, 8, fk->trace);
    fwrite(&n, sizeof n, 1, fk->trace);
}

static void trace_period(fake_t *fk, int64_t now)
{
    const int n = fk->robot->n_joints;
    uint32_t mode = (uint32_t)fk->out.mode;
    uint32_t flags = (fk->core.target.hold ? 1u : 0u) | (fk->out.moving ? 2u : 0u);
    fwrite(&now, sizeof now, 1, fk->trace);
    fwrite(&mode, sizeof mode, 1, fk->trace);
    fwrite(&flags, sizeof flags, 1, fk->trace);
    fwrite(&fk->out.target_seq, sizeof fk->out.target_seq, 1, fk->trace);
    fwrite(fk->out.q, sizeof(double), (size_t)n, fk->trace);
    fwrite(fk->out.dq, sizeof(double), (size_t)n, fk->trace);
    fwrite(fk->out.ddq, sizeof(double), (size_t)n, fk->trace);
}

#define STATS_MAX_LATENCY (1 << 16)
#define STATS_MAX_LATENESS (1 << 20)

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void print_percentiles(const char *what, int32_t *v, size_t n)
{
    if (n == 0) {
        log_line(5, "stats: %s: no samples", what);
        return;
    }
    qsort(v, n, sizeof *v, cmp_i32);
    log_line(5, "stats: %s: %zu samples, p50 %d us, p99 %d us, max %d us", what, n,
             v[(n - 1) / 2], v[(size_t)((double)(n - 1) * 0.99)], v[n - 1]);
}

static int fault_rates_ok(const fault_dir_t *d)
{
    const double p[] = {d->drop, d->delay, d->duplicate, d->reorder};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (!(p[i] >= 0 && p[i] <= 1))
            return 0;
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pacd-fake-driver --bind ENDPOINT [--robot panda|sawyer] [--gripper] "
                    "[--state-rate-hz 100..1000] [--protocol-version N] [--drop-targets P] "
                    "[--drop-states P] [--seed S]\n"
                    "       [--delay-targets P] [--delay-states P] [--delay-ms MS] [--jitter-ms MS]\n"
                    "       [--duplicate-targets P] [--duplicate-states P]\n"
                    "       [--reorder-targets P] [--reorder-states P]\n"
                    "       [--stall-after-ms MS] [--stall-ms MS] [--stall-every-ms MS]\n"
                    "       [--trace FILE] [--stats] [--curve-secret-key FILE] [--curve-allow DIR] [--insecure] [--help]\n"
                    "Fault injection (docs/bridge.md), each P a rate 0..1 of the targets received\n"
                    "or the states sent, drawn from --seed S (deterministic):\n"
                    "  --drop-*       drop the message\n"
                    "  --delay-*      deliver it --delay-ms + uniform(0, --jitter-ms) later (a\n"
                    "                 delayed target keeps its receive time: it arrives aged)\n"
                    "  --duplicate-*  deliver it twice\n"
                    "  --reorder-*    hold it back and deliver it right after the next one\n"
                    "  --stall-ms MS  no message passes either way for MS ms, --stall-after-ms\n"
                    "                 after the first handshake (again every --stall-every-ms)\n"
                    "--trace FILE: the commanded motion of every 1 ms period (binary, see the source)\n"
                    "--stats: at exit, target latency (pacd's send time to receipt: same host only)\n"
                    "         and the 1 ms loop's wake-up lateness, p50/p99/max\n");
}

int main(int argc, char **argv)
{
    const char *bind = NULL, *robot_name = "panda";
    int gripper = 0, insecure = 0;
    const char *trace_path = NULL, *curve_key = NULL, *curve_allow = NULL;
    fake_t fk = {.bridge = {.name = "pacd-fake-driver", .protocol_version = BRIDGE_PROTOCOL_VERSION,
                            .state_rate_hz = 250},
                 .fault = &g_fault};
    fault_t *f = fk.fault;
    f->rng = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gripper")) {
            gripper = 1;
            continue;
        }
        if (!strcmp(a, "--stats")) {
            fk.stats = 1;
            continue;
        }
        if (!strcmp(a, "--insecure")) {
            insecure = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--bind"))
            bind = v;
        else if (!strcmp(a, "--robot"))
            robot_name = v;
        else if (!strcmp(a, "--state-rate-hz"))
            fk.bridge.state_rate_hz = atof(v);
        else if (!strcmp(a, "--protocol-version"))
            fk.bridge.protocol_version = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--drop-targets"))
            f->targets.drop = atof(v);
        else if (!strcmp(a, "--drop-states"))
            f->states.drop = atof(v);
        else if (!strcmp(a, "--delay-targets"))
            f->targets.delay = atof(v);
        else if (!strcmp(a, "--delay-states"))
            f->states.delay = atof(v);
        else if (!strcmp(a, "--duplicate-targets"))
            f->targets.duplicate = atof(v);
        else if (!strcmp(a, "--duplicate-states"))
            f->states.duplicate = atof(v);
        else if (!strcmp(a, "--reorder-targets"))
            f->targets.reorder = atof(v);
        else if (!strcmp(a, "--reorder-states"))
            f->states.reorder = atof(v);
        else if (!strcmp(a, "--delay-ms"))
            f->delay_ms = atof(v);
        else if (!strcmp(a, "--jitter-ms"))
            f->jitter_ms = atof(v);
        else if (!strcmp(a, "--stall-after-ms"))
            f->stall_after_ms = atof(v);
        else if (!strcmp(a, "--stall-ms"))
            f->stall_ms = atof(v);
        else if (!strcmp(a, "--stall-every-ms"))
            f->stall_every_ms = atof(v);
        else if (!strcmp(a, "--trace"))
            trace_path = v;
        else if (!strcmp(a, "--curve-secret-key"))
            curve_key = v;
        else if (!strcmp(a, "--curve-allow"))
            curve_allow = v;
        else if (!strcmp(a, "--seed"))
            f->rng = strtoull(v, NULL, 10) * 2 + 1;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!bind || !(fk.bridge.state_rate_hz >= 100 && fk.bridge.state_rate_hz <= 1000) ||
        !fault_rates_ok(&f->targets) || !fault_rates_ok(&f->states) ||
        !(f->delay_ms >= 0 && f->delay_ms <= 10000) || !(f->jitter_ms >= 0 && f->jitter_ms <= 10000) ||
        !(f->stall_after_ms >= 0) || !(f->stall_ms >= 0 && f->stall_ms <= 600000) ||
        !(f->stall_every_ms == 0 || f->stall_every_ms > f->stall_ms)) {
        usage(stderr);
        return 2;
    }
    fk.robot = hal_robot_find(robot_name);
    if (fk.robot && gripper)
        fk.robot = hal_robot_variant(fk.robot, 1);
    if (!fk.robot) {
        fprintf(stderr, "pacd-fake-driver: no robot %s%s\n", robot_name,
                gripper ? " with a gripper" : "");
        return 2;
    }

    char err[512] = "";
    hal_sim_options_t so = {.rate_hz = 1000};
    hal_options_t ho = {.backend = "sim", .fixed_robot = 1, .backend_options = &so};
    fk.arm = hal_new(fk.robot, &ho, err, sizeof err);
    if (!fk.arm) {
        fprintf(stderr, "pacd-fake-driver: %s\n", err);
        return 1;
    }
    hal_state_t st;
    while (hal_read_state(fk.arm, &st) != 0)
        ;
    if (driver_core_init(&fk.core, fk.robot, st.q, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "pacd-fake-driver: %s\n", err);
        hal_destroy(&fk.arm);
        return 1;
    }

    if (trace_path) {
        fk.trace = fopen(trace_path, "wb");
        if (!fk.trace) {
            fprintf(stderr, "pacd-fake-driver: cannot write %s: %s\n", trace_path, strerror(errno));
            hal_destroy(&fk.arm);
            return 1;
        }
        setvbuf(fk.trace, NULL, _IOFBF, 1 << 20);
        trace_header(&fk);
    }
    if (fk.stats) {
        fk.latency_us = malloc(STATS_MAX_LATENCY * sizeof *fk.latency_us);
        fk.lateness_us = malloc(STATS_MAX_LATENESS * sizeof *fk.lateness_us);
        if (!fk.latency_us || !fk.lateness_us) {
            fprintf(stderr, "pacd-fake-driver: out of memory\n");
            return 1;
        }
    }

    fk.bridge.robot = fk.robot;
    fk.bridge.curve_secret_key = curve_key;
    fk.bridge.curve_allow = curve_allow;
    fk.bridge.insecure = insecure;
    if (driver_bridge_open(&fk.bridge, bind, err, sizeof err) != 0) {
        fprintf(stderr, "pacd-fake-driver: %s\n", err);
        hal_destroy(&fk.arm);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    log_line(5, "%s on %s: bridge protocol %u, state at %g Hz, ready", fk.robot->name, bind,
             fk.bridge.protocol_version, fk.bridge.state_rate_hz);

    const int64_t state_every = llround(1e9 / fk.bridge.state_rate_hz);
    int64_t next = rt_clock_mono_ns() + TICK_NS, next_state = next;
    while (!stop_requested) {
        if (rt_clock_sleep_until_intr(next) == -EINTR)
            continue;
        int64_t now = rt_clock_mono_ns();
        if (fk.stats && fk.n_lateness < STATS_MAX_LATENESS)
            fk.lateness_us[fk.n_lateness++] = (int32_t)((now - next) / 1000);
        if (now - next >= TICK_NS) {
            fk.overruns++;
            next = now; /* no catch-up: the arm is real-time, time does not wait */
        }
        for (int k = 0; k < 64; k++) {
            uint8_t id[DRIVER_BRIDGE_MAX_ID];
            size_t id_len;
            Pacd__V1__BridgeMessage *m;
            if (!driver_bridge_recv(&fk.bridge, id, &id_len, &m))
                break;
            if (!m)
                continue;
            if (fk.stats && m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_TARGET &&
                m->target->time_mono_ns > 0 && fk.n_latency < STATS_MAX_LATENCY)
                fk.latency_us[fk.n_latency++] =
                    (int32_t)((rt_clock_mono_ns() - m->target->time_mono_ns) / 1000);
            if (fault_stalled(f, now))
                f->targets.stalled++; /* nothing passes, handshakes neither */
            else if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_HELLO)
                answer_hello(&fk, id, id_len, m->hello);
            else if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_TARGET)
                take_target(&fk, id, id_len, m->target, now);
            pacd__v1__bridge_message__free_unpacked(m, NULL);
        }
        fault_release(f, &f->targets, now, deliver_target, &fk);
        driver_output_t prev = fk.out;
        driver_core_step(&fk.core, now, &fk.out);
        if (fk.trace)
            trace_period(&fk, now);
        /* the trace judged on every period, as the unit tests do: speed,
         * acceleration and jerk from the commanded velocities themselves */
        for (int i = 0; i < fk.robot->n_joints; i++) {
            const hal_robot_t *r = fk.robot;
            double a = (fk.out.dq[i] - prev.dq[i]) / 1e-3;
            double a_prev = prev.ddq[i];
            if (fabs(fk.out.dq[i]) > r->dq_max[i] * (1 + 1e-9) ||
                fabs(a) > r->ddq_max[i] * (1 + 1e-6) + 1e-6 ||
                fabs(fk.out.ddq[i] - a_prev) / 1e-3 > r->dddq_max[i] * (1 + 1e-6) + 1e-3) {
                if (fk.violations++ < 5)
                    log_line(3, "joint %d broke a limit: v %.6g, a %.6g, previous a %.6g", i + 1,
                             fk.out.dq[i], a, a_prev);
            }
        }
        if (fk.out.mode == DRIVER_STOPPING && !fk.stopping) {
            /* from the period before: its velocity and acceleration; the
             * discrete profile may add up to two periods' travel */
            fk.stopping = 1;
            fk.stop_start_ns = now;
            for (int i = 0; i < fk.robot->n_joints; i++) {
                fk.stop_q0[i] = prev.q[i];
                fk.stop_allowed[i] = driver_stop_distance(prev.dq[i], prev.ddq[i],
                                                          fk.robot->ddq_max[i],
                                                          fk.robot->dddq_max[i]) +
                                     2e-3 * fabs(prev.dq[i]) + 1e-9;
            }
        } else if (fk.stopping && fk.out.mode != DRIVER_STOPPING) {
            fk.stopping = 0;
            double worst = 0;
            for (int i = 0; i < fk.robot->n_joints; i++)
                worst = fmax(worst, fabs(fk.out.q[i] - fk.stop_q0[i]) / fk.stop_allowed[i]);
            if (fk.out.mode == DRIVER_IDLE && !fk.out.moving)
                log_line(5, "at rest after a stale stop: %lld ms, the farthest joint used %.3f "
                            "of its stopping distance",
                         (long long)((now - fk.stop_start_ns) / 1000000), worst);
        }
        hal_command_t cmd = {.space = HAL_SPACE_JOINT_VELOCITY, .n = fk.robot->n_joints};
        for (int i = 0; i < fk.robot->n_joints; i++)
            cmd.values[i] = fk.out.dq[i];
        if (fk.robot->has_gripper) {
            cmd.space = HAL_SPACE_JOINT_VELOCITY_GRIPPER;
            cmd.values[cmd.n++] = fk.out.gripper;
        }
        hal_command(fk.arm, &cmd);
        if (now >= next_state) {
            send_state(&fk, now);
            next_state += state_every;
            if (next_state < now)
                next_state = now + state_every;
        }
        fault_release(f, &f->states, now, deliver_state, &fk);
        next += TICK_NS;
    }
    driver_core_counters_t c = driver_core_counters(&fk.core);
    log_line(5, "stopping: %llu ticks, %llu targets, %llu stale stops, %llu holds, %llu hellos, "
                "%llu old targets, %llu dropped, %llu limit violations",
             (unsigned long long)c.ticks, (unsigned long long)c.targets_received,
             (unsigned long long)c.stale_stops, (unsigned long long)c.holds,
             (unsigned long long)fk.bridge.hellos, (unsigned long long)c.targets_old,
             (unsigned long long)fault_dropped(f), (unsigned long long)fk.violations);
    log_line(5, "faults: targets %llu dropped, %llu delayed, %llu duplicated, %llu reordered, "
                "%llu stalled; states %llu dropped, %llu delayed, %llu duplicated, %llu "
                "reordered, %llu stalled; %llu stalls",
             (unsigned long long)f->targets.dropped, (unsigned long long)f->targets.delayed,
             (unsigned long long)f->targets.duplicated, (unsigned long long)f->targets.reordered,
             (unsigned long long)f->targets.stalled, (unsigned long long)f->states.dropped,
             (unsigned long long)f->states.delayed, (unsigned long long)f->states.duplicated,
             (unsigned long long)f->states.reordered, (unsigned long long)f->states.stalled,
             (unsigned long long)f->stalls);
    if (fk.stats) {
        print_percentiles("target latency", fk.latency_us, fk.n_latency);
        print_percentiles("tick lateness", fk.lateness_us, fk.n_lateness);
        log_line(5, "stats: %llu overruns", (unsigned long long)fk.overruns);
    }
    free(fk.latency_us);
    free(fk.lateness_us);
    if (fk.trace && fclose(fk.trace) != 0)
        log_line(3, "cannot finish the trace: %s", strerror(errno));
    driver_bridge_close(&fk.bridge);
    hal_destroy(&fk.arm);
    return 0;
}
