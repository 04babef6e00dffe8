/* hal_remote — the `remote` backend: a robot-side driver (pacd-fake-driver,
 * later the Franka and Sawyer drivers) moves the arm; pacd talks to it over
 * the bridge protocol (docs/bridge.md): a DEALER socket connected to the
 * driver's ROUTER, one BridgeMessage per ZeroMQ message.
 *
 * Threads: the control loop calls read_state / command / hold, which only
 * touch lock-free mailboxes and atomics (RT-safe: no allocation, no
 * syscalls); one I/O thread (`pacd-hal-remote`, all signals blocked) owns the
 * socket: it sends the handshake until the driver accepts, each new command
 * as a JointCommand target and each hold as a hold target, takes the
 * driver's states (checked, bridge_check_state) into the state mailbox, and
 * declares the link lost when no valid state came for link_timeout_s.
 *
 * A lost link holds the arm twice over: the driver decelerates on its own
 * when targets go stale, and pacd's loop sees the state age past
 * state_max_age_ms (the state keeps its receive time) and holds. The state's
 * time_mono_ns is pacd's clock when the state arrived (the driver's clock is
 * another host's); time_unix_ns is the driver's measurement time. */
#include "hal.h"
#include "hal_backend.h"
#include "hal_log.h"
#include "hal_remote.h"

#include "bridge_wire.h"
#include "pacd_text.h"
#include "rt_clock.h"
#include "rt_seqbox.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define REMOTE_HELLO_INTERVAL_NS (100 * 1000000LL)
#define REMOTE_POLL_MS 1
/* States may overshoot the limits a little (measurement noise, a joint
 * stopped at its limit); far outside is a broken driver. */
#define REMOTE_STATE_MARGIN_RAD 0.05
#define REMOTE_STATE_SPEED_FACTOR 1.5

typedef struct {
    const hal_robot_t *robot;
    char endpoint[256];
    double policy_period_s;
    int64_t link_timeout_ns;

    void *zctx, *sock;
    pthread_t thread;
    int started;
    atomic_int running;

    rt_seqbox_t state_box; /* I/O thread -> loop: hal_state_t */
    rt_seqbox_t cmd_box;   /* loop -> I/O thread: hal_backend_cmd_t */
    uint64_t cmd_seq;      /* owned by the loop */
    _Atomic uint64_t hold_requests;
    atomic_int have_state; /* a state was published */
    /* the driver refused the handshake or speaks another version / robot:
     * refusal is written by the I/O thread before refused is set (release),
     * read by hal_new after it saw it (acquire); only before the first link */
    char refusal[320];
    atomic_int refused;

    _Atomic uint64_t n_commands, n_bad_commands, n_holds, n_link_up, n_link_losses,
        n_link_reconnects, n_states_received, n_states_rejected, n_targets_sent,
        n_targets_unsent, n_versions_refused, n_states_old, n_driver_errors;

    rt_seqbox_t report_box; /* I/O thread -> remote_counters: hal_driver_report_t */

    /* I/O thread only */
    int linked;            /* handshake accepted and states fresh */
    int ever_linked;
    int64_t last_state_ns, last_hello_ns;
    uint64_t sent_cmd_seq, sent_holds, target_seq, state_seq;
    uint64_t driver_seq;   /* newest DriverState.seq taken since the handshake */
    int driver_in_error;
    uint64_t logged_rejects;
} remote_t;

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* I/O thread: a journal-style line on stderr (hal_log.h). */
#define remote_log(prio, ...) hal_log(prio, "hal remote", __VA_ARGS__)

static void send_hello(remote_t *rm)
{
    Pacd__V1__DriverHello h = PACD__V1__DRIVER_HELLO__INIT;
    h.protocol_version = BRIDGE_PROTOCOL_VERSION;
    h.robot = (char *)rm->robot->name;
    h.n_joints = (uint32_t)rm->robot->n_joints;
    h.policy_period_s = rm->policy_period_s;
    h.peer = "pacd";
    h.has_gripper = rm->robot->has_gripper != 0;
    Pacd__V1__BridgeMessage m = PACD__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = PACD__V1__BRIDGE_MESSAGE__BODY_HELLO;
    m.hello = &h;
    bridge_send(rm->sock, NULL, 0, &m);
}

static void send_target(remote_t *rm, const hal_backend_cmd_t *c, int hold)
{
    const int n = rm->robot->n_joints;
    double values[HAL_MAX_JOINTS + 1];
    Pacd__V1__JointCommand t = PACD__V1__JOINT_COMMAND__INIT;
    t.protocol_version = BRIDGE_PROTOCOL_VERSION;
    t.robot = (char *)rm->robot->name;
    t.seq = ++rm->target_seq;
    t.time_unix_ns = rt_clock_unix_ns();
    t.time_mono_ns = rt_clock_mono_ns();
    t.mode = PACD__V1__JOINT_COMMAND__MODE__VELOCITY;
    t.hold = hold;
    if (!hold) {
        for (int i = 0; i < n; i++)
            values[i] = c->dq[i];
        t.n_values = (size_t)n;
        t.space = PACD__V1__ACTION_SPACE__JOINT_VELOCITY;
        if (c->has_gripper) {
            values[n] = c->gripper;
            t.n_values++;
            t.space = PACD__V1__ACTION_SPACE__JOINT_VELOCITY_GRIPPER;
        }
        t.values = values;
    }
    Pacd__V1__BridgeMessage m = PACD__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = PACD__V1__BRIDGE_MESSAGE__BODY_TARGET;
    m.target = &t;
    if (rm->linked && bridge_send(rm->sock, NULL, 0, &m) == 0)
        count(&rm->n_targets_sent);
    else
        count(&rm->n_targets_unsent);
}

/* I/O thread: tell a waiting hal_new why the driver cannot be used. */
static void refuse(remote_t *rm, const char *why)
{
    if (rm->ever_linked || atomic_load_explicit(&rm->refused, memory_order_relaxed))
        return;
    snprintf(rm->refusal, sizeof rm->refusal, "%s", why);
    atomic_store_explicit(&rm->refused, 1, memory_order_release);
}

static void take_hello(remote_t *rm, const Pacd__V1__DriverHello *h)
{
    char buf[200];
    if (h->protocol_version != BRIDGE_PROTOCOL_VERSION) {
        count(&rm->n_versions_refused);
        remote_log(3, "the driver at %s speaks bridge protocol version %u, pacd %d: refused; "
                      "run a driver of this pacd's version", rm->endpoint, h->protocol_version,
                   BRIDGE_PROTOCOL_VERSION);
        snprintf(buf, sizeof buf, "it speaks bridge protocol version %u, pacd %d",
                 h->protocol_version, BRIDGE_PROTOCOL_VERSION);
        refuse(rm, buf);
        return;
    }
    if (!h->accepted) {
        snprintf(buf, sizeof buf, "%.120s", h->error ? h->error : "");
        remote_log(3, "the driver at %s refused the handshake: %s", rm->endpoint, buf);
        char why[sizeof buf + 64];
        snprintf(why, sizeof why, "it refused the handshake: %s", buf);
        refuse(rm, why);
        return;
    }
    if (!h->robot || strcmp(h->robot, rm->robot->name) != 0 ||
        h->n_joints != (uint32_t)rm->robot->n_joints) {
        snprintf(buf, sizeof buf, "%.32s with %u joints", h->robot ? h->robot : "",
                 h->n_joints);
        remote_log(3, "the driver at %s drives %s, not this robot: refused", rm->endpoint, buf);
        char why[sizeof buf + 64];
        snprintf(why, sizeof why, "it drives a %s, not this %s", buf, rm->robot->name);
        refuse(rm, why);
        return;
    }
    if (rm->linked)
        return; /* a repeated answer */
    rm->linked = 1;
    rm->driver_seq = 0; /* a restarted driver counts its states from 1 again */
    rm->last_state_ns = rt_clock_mono_ns(); /* the first state has link_timeout to come */
    atomic_store_explicit(&rm->n_link_up, 1, memory_order_relaxed);
    if (rm->ever_linked)
        count(&rm->n_link_reconnects);
    rm->ever_linked = 1;
    remote_log(5, "linked to the driver at %s (%s)", rm->endpoint, h->peer ? h->peer : "");
}

/* I/O thread: the mode, first error and counters of a valid driver state
 * for telemetry; entering ERROR is counted and logged (the text escaped: it
 * comes from the peer). */
static void take_report(remote_t *rm, const Pacd__V1__DriverState *s)
{
    hal_driver_report_t r = {.mode = (int)s->mode};
    text_escape_str(r.error, sizeof r.error, s->n_errors > 0 ? s->errors[0] : "");
    int in_error = s->mode == PACD__V1__DRIVER_STATE__MODE__ERROR;
    if (in_error && !rm->driver_in_error) {
        count(&rm->n_driver_errors);
        remote_log(3, "the driver at %s reports an error: %s; the arm holds until it "
                      "recovers", rm->endpoint, r.error[0] ? r.error : "(no text)");
    } else if (!in_error && rm->driver_in_error) {
        remote_log(5, "the driver at %s left its error state", rm->endpoint);
    }
    rm->driver_in_error = in_error;
    const Pacd__V1__DriverCounters *c = s->counters;
    if (c) {
        r.ticks = c->ticks;
        r.overruns = c->overruns;
        r.targets_received = c->targets_received;
        r.targets_refused = c->targets_refused;
        r.targets_old = c->targets_old;
        r.stale_stops = c->stale_stops;
        r.holds = c->holds;
        r.velocity_clamps = c->velocity_clamps;
    }
    rt_seqbox_write(&rm->report_box, &r, sizeof r);
}

static void take_state(remote_t *rm, const Pacd__V1__DriverState *s)
{
    if (!rm->linked) {
        count(&rm->n_states_rejected);
        return;
    }
    char why[160];
    if (bridge_check_state(s, rm->robot, REMOTE_STATE_MARGIN_RAD, REMOTE_STATE_SPEED_FACTOR,
                           why, sizeof why) != 0) {
        count(&rm->n_states_rejected);
        if (rm->logged_rejects++ < 5)
            remote_log(4, "a driver state refused (%s) from %s", why, rm->endpoint);
        return;
    }
    if (s->seq <= rm->driver_seq) {
        /* duplicated or overtaken on the way: the newer one is already in */
        count(&rm->n_states_old);
        return;
    }
    rm->driver_seq = s->seq;
    int64_t now = rt_clock_mono_ns();
    take_report(rm, s);
    rm->last_state_ns = now; /* the link is alive, whatever the driver's mode */
    if (s->mode == PACD__V1__DRIVER_STATE__MODE__ERROR) {
        /* the arm is not under control: no state for the loop, so it goes
         * stale and the loop holds until the driver reports a mode again */
        count(&rm->n_states_received);
        return;
    }
    const hal_robot_t *r = rm->robot;
    hal_state_t st = {0};
    st.time_mono_ns = now;
    st.time_unix_ns = s->time_unix_ns;
    st.seq = ++rm->state_seq;
    st.n_joints = r->n_joints;
    for (int i = 0; i < r->n_joints; i++) {
        st.q[i] = s->joint_positions[i];
        st.dq[i] = s->joint_velocities[i];
    }
    st.gripper_position = s->gripper_position;
    st.gripper_velocity = s->gripper_velocity;
    st.grasp = s->grasp;
    if (s->end_effector) {
        const Pacd__V1__Pose *p = s->end_effector;
        double pose[7] = {p->x, p->y, p->z, p->qw, p->qx, p->qy, p->qz};
        memcpy(st.ee_pose, pose, sizeof pose);
    } else {
        hal_robot_fk(r, st.q, st.ee_pose);
    }
    rt_seqbox_write(&rm->state_box, &st, sizeof st);
    atomic_store_explicit(&rm->have_state, 1, memory_order_release);
    count(&rm->n_states_received);
}

static void *remote_thread(void *arg)
{
    remote_t *rm = arg;
    zmq_pollitem_t item = {.socket = rm->sock, .events = ZMQ_POLLIN};
    while (atomic_load_explicit(&rm->running, memory_order_acquire)) {
        zmq_poll(&item, 1, REMOTE_POLL_MS);
        for (int k = 0; k < 64; k++) {
            Pacd__V1__BridgeMessage *m = NULL;
            if (bridge_recv(rm->sock, NULL, NULL, &m) != 0)
                break;
            if (!m) {
                count(&rm->n_states_rejected);
                continue;
            }
            if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_HELLO)
                take_hello(rm, m->hello);
            else if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_STATE)
                take_state(rm, m->state);
            pacd__v1__bridge_message__free_unpacked(m, NULL);
        }
        int64_t now = rt_clock_mono_ns();
        if (rm->linked && now - rm->last_state_ns > rm->link_timeout_ns) {
            rm->linked = 0;
            atomic_store_explicit(&rm->n_link_up, 0, memory_order_relaxed);
            count(&rm->n_link_losses);
            remote_log(4, "lost the driver at %s: no valid state for %lld ms; the arm holds "
                          "until it is back", rm->endpoint,
                       (long long)(rm->link_timeout_ns / 1000000));
        }
        if (!rm->linked && now - rm->last_hello_ns >= REMOTE_HELLO_INTERVAL_NS) {
            rm->last_hello_ns = now;
            send_hello(rm);
        }
        /* a hold first: it wins over a command sent concurrently */
        uint64_t holds = atomic_load_explicit(&rm->hold_requests, memory_order_acquire);
        hal_backend_cmd_t c;
        int have_cmd = rt_seqbox_read(&rm->cmd_box, &c, sizeof c) == 0 && c.seq != 0 &&
                       c.seq != rm->sent_cmd_seq;
        if (holds != rm->sent_holds && (!have_cmd || c.hold_seen < holds)) {
            rm->sent_holds = holds;
            if (have_cmd)
                rm->sent_cmd_seq = c.seq; /* older than the hold: never sent */
            send_target(rm, NULL, 1);
        } else if (have_cmd) {
            rm->sent_holds = holds;
            rm->sent_cmd_seq = c.seq;
            send_target(rm, &c, 0);
        }
    }
    return NULL;
}

static int remote_read_state(hal_t *self, hal_state_t *state)
{
    remote_t *rm = self->impl;
    return rt_seqbox_read(&rm->state_box, state, sizeof *state);
}

static int remote_hold(hal_t *self)
{
    remote_t *rm = self->impl;
    atomic_fetch_add_explicit(&rm->hold_requests, 1, memory_order_acq_rel);
    count(&rm->n_holds);
    return 0;
}

static int remote_command(hal_t *self, const hal_command_t *cmd)
{
    remote_t *rm = self->impl;
    hal_backend_cmd_t c;
    uint64_t hold_seen = atomic_load_explicit(&rm->hold_requests, memory_order_acquire);
    if (hal_backend_check_command(rm->robot, cmd, hold_seen, &c) != 0) {
        count(&rm->n_bad_commands);
        remote_hold(self);
        return -EINVAL;
    }
    c.seq = ++rm->cmd_seq;
    rt_seqbox_write(&rm->cmd_box, &c, sizeof c);
    count(&rm->n_commands);
    return 0;
}

static int remote_counters(hal_t *self, hal_counters_t *out)
{
    remote_t *rm = self->impl;
#define L(x) atomic_load_explicit(&rm->x, memory_order_relaxed)
    *out = (hal_counters_t){
        .commands = L(n_commands),
        .bad_commands = L(n_bad_commands),
        .holds = L(n_holds),
        .watchdog_holds = L(n_link_losses),
        .link_up = L(n_link_up),
        .link_losses = L(n_link_losses),
        .link_reconnects = L(n_link_reconnects),
        .states_received = L(n_states_received),
        .states_rejected = L(n_states_rejected),
        .targets_sent = L(n_targets_sent),
        .targets_unsent = L(n_targets_unsent),
        .versions_refused = L(n_versions_refused),
        .states_old = L(n_states_old),
        .driver_errors = L(n_driver_errors),
    };
#undef L
    hal_driver_report_t r;
    if (rt_seqbox_read(&rm->report_box, &r, sizeof r) == 0)
        out->driver = r;
    return 0;
}

static void remote_free(remote_t *rm)
{
    if (rm->started) {
        atomic_store_explicit(&rm->running, 0, memory_order_release);
        pthread_join(rm->thread, NULL);
    }
    if (rm->sock)
        zmq_close(rm->sock);
    if (rm->zctx)
        zmq_ctx_term(rm->zctx);
    free(rm);
}

static void remote_destroy(hal_t *self)
{
    remote_t *rm = self->impl;
    if (!rm)
        return;
    /* the driver decelerates on its own when targets stop */
    remote_free(rm);
    self->impl = NULL;
}

static const hal_ops_t remote_ops = {
    .api_version = HAL_API_VERSION,
    .name = "remote",
    .read_state = remote_read_state,
    .command = remote_command,
    .hold = remote_hold,
    .destroy = remote_destroy,
    .counters = remote_counters,
};

int hal_remote_open(hal_t *hal, const hal_options_t *options, const void *backend_options,
                    char *err, size_t errlen)
{
    const hal_remote_options_t *ro = backend_options;
    if (!ro || !ro->endpoint || !ro->endpoint[0]) {
        pacd_errf(err, errlen, "hal remote: no driver endpoint; set [robot] driver_endpoint "
                               "(tcp://HOST:PORT or ipc://PATH, where the driver binds)");
        return -EINVAL;
    }
    if (options->stepped) {
        pacd_errf(err, errlen, "hal remote: a real arm runs on the real clock");
        return -EINVAL;
    }
    double period = ro->policy_period_s ? ro->policy_period_s : 0.05;
    double link = ro->link_timeout_s ? ro->link_timeout_s : 0.1;
    double wait = ro->connect_timeout_s ? ro->connect_timeout_s : 5.0;
    if (!(period > 0 && period <= 10) || !(link > 0 && link <= 60) || !(wait > 0 && wait <= 600)) {
        pacd_errf(err, errlen, "hal remote: policy period %g s, link timeout %g s or connect "
                               "timeout %g s out of range", period, link, wait);
        return -EINVAL;
    }
    remote_t *rm = calloc(1, sizeof *rm);
    if (!rm) {
        pacd_errf(err, errlen, "hal remote: out of memory");
        return -ENOMEM;
    }
    rm->robot = hal->robot;
    snprintf(rm->endpoint, sizeof rm->endpoint, "%s", ro->endpoint);
    rm->policy_period_s = period;
    rm->link_timeout_ns = llround(link * 1e9);
    rt_seqbox_init(&rm->state_box);
    rt_seqbox_init(&rm->cmd_box);
    rt_seqbox_init(&rm->report_box);
    atomic_init(&rm->running, 1);
    rm->last_hello_ns = INT64_MIN / 2;

    rm->zctx = zmq_ctx_new();
    rm->sock = rm->zctx ? zmq_socket(rm->zctx, ZMQ_DEALER) : NULL;
    int zero = 0, one = 1, hwm = 16;
    if (!rm->sock || zmq_setsockopt(rm->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(rm->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(rm->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(rm->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        (ro->curve_server_key &&
         bridge_curve_client(rm->sock, ro->curve_server_key, ro->curve_public_key,
                             ro->curve_secret_key, err, errlen) != 0) ||
        zmq_connect(rm->sock, rm->endpoint) != 0) {
        pacd_errf(err, errlen, "hal remote: cannot connect to %s: %s", rm->endpoint,
                  zmq_strerror(zmq_errno()));
        remote_free(rm);
        return -EINVAL;
    }
    int rc = hal_backend_thread_start(&rm->thread, remote_thread, rm, "pacd-hal-remote", 0);
    if (rc != 0) {
        pacd_errf(err, errlen, "hal remote: cannot start the I/O thread: %s", strerror(rc));
        remote_free(rm);
        return -rc;
    }
    rm->started = 1;
    /* the loop reads a state from its first tick: wait for the first one */
    int64_t give_up = rt_clock_mono_ns() + llround(wait * 1e9);
    while (!atomic_load_explicit(&rm->have_state, memory_order_acquire)) {
        if (atomic_load_explicit(&rm->refused, memory_order_acquire)) {
            pacd_errf(err, errlen, "hal remote: the driver at %s cannot drive this arm: %s",
                      rm->endpoint, rm->refusal);
            remote_free(rm);
            return -EPROTO;
        }
        if (rt_clock_mono_ns() > give_up) {
            pacd_errf(err, errlen,
                      "hal remote: no driver answered on %s within %g s (handshake and a "
                      "valid state of a %s); start the driver there (e.g. pacd-fake-driver "
                      "--robot %s --bind %s) or fix [robot] driver_endpoint%s; refused "
                      "versions: %llu, refused states: %llu",
                      rm->endpoint, wait, rm->robot->name, rm->robot->name, rm->endpoint,
                      ro->curve_server_key ? " (CURVE: [robot] driver_public_key must be the "
                                             "driver's --curve-secret-key pair, and the driver "
                                             "must admit pacd's key)" : "",
                      (unsigned long long)atomic_load(&rm->n_versions_refused),
                      (unsigned long long)atomic_load(&rm->n_states_rejected));
            remote_free(rm);
            return -ETIMEDOUT;
        }
        rt_clock_sleep_ns(5000000);
    }
    hal->ops = &remote_ops;
    hal->impl = rm;
    return 0;
}
