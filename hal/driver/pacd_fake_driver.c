/* pacd-fake-driver — a robot-side driver without a robot: the driver core
 * (driver_core.h) over the `sim` backend's kinematic arm, speaking the
 * bridge protocol (docs/bridge.md) on a ROUTER socket it binds. The stand-in
 * for CI and for trying pacd's `remote` backend without an arm.
 *
 *   pacd-fake-driver --bind ENDPOINT [--robot panda|sawyer] [--gripper]
 *                    [--state-rate-hz 250] [--protocol-version N]
 *                    [--drop-targets P] [--drop-states P] [--seed S]
 *
 * One thread: every 1 ms (absolute CLOCK_MONOTONIC deadlines) it drains the
 * socket (handshakes, targets), steps the core and commands the sim arm with
 * the core's joint velocities; every 1/state-rate-hz s it sends the arm's
 * state to the peer that shook hands last. SIGTERM / SIGINT: exit 0.
 * --drop-*: the fault-injection hook, dropping that fraction of targets
 * received / states sent (deterministic for a seed; counted). A real driver
 * (libfranka's callback) keeps its I/O in another thread; here the socket
 * calls never block (ZMQ_DONTWAIT). */
#include "driver_bridge.h"
#include "driver_core.h"
#include "hal.h"
#include "hal_sim.h"
#include "rt_clock.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_NS 1000000LL

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Fault injection: what happens to one message in one direction. Only drop
 * for now; delay, duplicate and reorder go here too. */
typedef struct {
    double drop_targets, drop_states;
    uint64_t rng;
    uint64_t dropped;
} fault_t;

static int fault_drop(fault_t *f, double p)
{
    if (p <= 0)
        return 0;
    f->rng = f->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(f->rng >> 11) / (double)(1ULL << 53);
    if (u < p) {
        f->dropped++;
        return 1;
    }
    return 0;
}

typedef struct {
    const hal_robot_t *robot;
    hal_t *arm;
    driver_core_t core;
    driver_bridge_t bridge; /* the socket, the peer, handshake counters */
    uint64_t overruns;
    fault_t fault;
    driver_output_t out;
    /* the stop in progress after stale targets: where it began and how far
     * the limits allow each joint to go */
    int stopping;
    uint64_t violations; /* periods whose command broke a limit (never, we hope) */
    int64_t stop_start_ns;
    double stop_q0[HAL_MAX_JOINTS], stop_allowed[HAL_MAX_JOINTS];
} fake_t;

#define log_line(prio, ...) driver_bridge_log(&fk.bridge, prio, __VA_ARGS__)

static void take_target(fake_t *fk, const uint8_t *id, size_t id_len,
                        const Pacd__V1__JointCommand *t, int64_t now)
{
    driver_target_t dt;
    if (driver_bridge_target(&fk->bridge, id, id_len, t, now, &dt) != 0)
        return;
    if (fault_drop(&fk->fault, fk->fault.drop_targets))
        return;
    driver_core_target(&fk->core, &dt);
}

static void send_state(fake_t *fk)
{
    hal_state_t st;
    if (fk->bridge.peer_len == 0 || hal_read_state(fk->arm, &st) != 0)
        return;
    if (fault_drop(&fk->fault, fk->fault.drop_states))
        return;
    driver_bridge_arm_t arm = {.n = st.n_joints, .q = st.q, .dq = st.dq,
                               .gripper_position = st.gripper_position,
                               .gripper_velocity = st.gripper_velocity, .grasp = st.grasp,
                               .time_unix_ns = st.time_unix_ns, .time_mono_ns = st.time_mono_ns};
    memcpy(arm.ee_pose, st.ee_pose, sizeof arm.ee_pose);
    driver_bridge_extra_t extra = {.overruns = fk->overruns,
                                   .messages_dropped = fk->fault.dropped};
    driver_bridge_send_state(&fk->bridge, &arm, &fk->out, &fk->core, &extra);
}

static void usage(void)
{
    fprintf(stderr, "usage: pacd-fake-driver --bind ENDPOINT [--robot panda|sawyer] [--gripper] "
                    "[--state-rate-hz 100..1000] [--protocol-version N] [--drop-targets P] "
                    "[--drop-states P] [--seed S]\n");
}

int main(int argc, char **argv)
{
    const char *bind = NULL, *robot_name = "panda";
    int gripper = 0;
    fake_t fk = {.bridge = {.name = "pacd-fake-driver", .state_rate_hz = 250},
                 .fault.rng = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gripper")) {
            gripper = 1;
            continue;
        }
        if (!v) {
            usage();
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
            fk.fault.drop_targets = atof(v);
        else if (!strcmp(a, "--drop-states"))
            fk.fault.drop_states = atof(v);
        else if (!strcmp(a, "--seed"))
            fk.fault.rng = strtoull(v, NULL, 10) * 2 + 1;
        else {
            usage();
            return 2;
        }
    }
    if (!bind || !(fk.bridge.state_rate_hz >= 100 && fk.bridge.state_rate_hz <= 1000) ||
        !(fk.fault.drop_targets >= 0 && fk.fault.drop_targets <= 1) ||
        !(fk.fault.drop_states >= 0 && fk.fault.drop_states <= 1)) {
        usage();
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

    fk.bridge.robot = fk.robot;
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
            if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_HELLO)
                driver_bridge_hello(&fk.bridge, &fk.core, id, id_len, m->hello);
            else if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_TARGET)
                take_target(&fk, id, id_len, m->target, now);
            pacd__v1__bridge_message__free_unpacked(m, NULL);
        }
        driver_output_t prev = fk.out;
        driver_core_step(&fk.core, now, &fk.out);
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
            send_state(&fk);
            next_state += state_every;
            if (next_state < now)
                next_state = now + state_every;
        }
        next += TICK_NS;
    }
    driver_core_counters_t c = driver_core_counters(&fk.core);
    log_line(5, "stopping: %llu ticks, %llu targets, %llu stale stops, %llu holds, %llu hellos, "
                "%llu old targets, %llu dropped, %llu limit violations",
             (unsigned long long)c.ticks, (unsigned long long)c.targets_received,
             (unsigned long long)c.stale_stops, (unsigned long long)c.holds,
             (unsigned long long)fk.bridge.hellos, (unsigned long long)c.targets_old,
             (unsigned long long)fk.fault.dropped, (unsigned long long)fk.violations);
    driver_bridge_close(&fk.bridge);
    hal_destroy(&fk.arm);
    return 0;
}
