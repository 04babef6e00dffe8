/* driver_bridge — see driver_bridge.h. Moved out of pacd_fake_driver.c so
 * the fake, the Franka and the Sawyer driver speak the protocol with one
 * code. */
#include "driver_bridge.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int driver_bridge_open(driver_bridge_t *b, const char *endpoint, char *err, size_t errlen)
{
    if (!b->protocol_version)
        b->protocol_version = BRIDGE_PROTOCOL_VERSION;
    b->ctx = zmq_ctx_new();
    b->sock = b->ctx ? zmq_socket(b->ctx, ZMQ_ROUTER) : NULL;
    if (!b->sock) {
        snprintf(err, errlen, "cannot make a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        driver_bridge_close(b);
        return -1;
    }
    int zero = 0, hwm = 64;
    zmq_setsockopt(b->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (b->curve_allow && !b->curve_secret_key) {
        snprintf(err, errlen, "--curve-allow needs --curve-secret-key");
        driver_bridge_close(b);
        return -1;
    }
    if (b->curve_allow &&
        !(b->allow = bridge_allow_start(b->ctx, b->curve_allow, b->name, err, errlen))) {
        driver_bridge_close(b);
        return -1;
    }
    if (bridge_bind(b->sock, endpoint, b->curve_secret_key, b->insecure, err, errlen) != 0) {
        driver_bridge_close(b);
        return -1;
    }
    return 0;
}

void driver_bridge_close(driver_bridge_t *b)
{
    if (b->sock)
        zmq_close(b->sock);
    if (b->allow) {
        driver_bridge_log(b, 5, "CURVE: %llu client keys admitted, %llu refused",
                          (unsigned long long)bridge_allow_admitted(b->allow),
                          (unsigned long long)bridge_allow_refused(b->allow));
        bridge_allow_stop(b->allow);
        b->allow = NULL;
    }
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    b->sock = b->ctx = NULL;
}

int driver_bridge_recv(driver_bridge_t *b, uint8_t *id, size_t *id_len,
                       Pacd__V1__BridgeMessage **out)
{
    *id_len = DRIVER_BRIDGE_MAX_ID;
    *out = NULL;
    return bridge_recv(b->sock, id, id_len, out) == 0;
}

static int core_session(void *ctx, double policy_period_s, char *err, size_t errlen)
{
    if (driver_core_new_session(ctx, policy_period_s) == 0)
        return 0;
    snprintf(err, errlen, "policy period %g s out of range (1 ms..10 s)", policy_period_s);
    return -1;
}

void driver_bridge_hello(driver_bridge_t *b, driver_core_t *core, const uint8_t *id,
                         size_t id_len, const Pacd__V1__DriverHello *h)
{
    driver_bridge_hello_with(b, core_session, core, id, id_len, h);
}

int driver_bridge_hello_with(driver_bridge_t *b, driver_bridge_session_fn session, void *ctx,
                             const uint8_t *id, size_t id_len, const Pacd__V1__DriverHello *h)
{
    Pacd__V1__DriverHello r = PACD__V1__DRIVER_HELLO__INIT;
    r.protocol_version = b->protocol_version;
    r.robot = (char *)b->robot->name;
    r.n_joints = (uint32_t)b->robot->n_joints;
    r.state_rate_hz = b->state_rate_hz;
    r.peer = (char *)b->name;
    r.has_gripper = b->robot->has_gripper != 0;
    char error[256] = "";
    if (h->protocol_version != b->protocol_version) {
        b->versions_refused++;
        snprintf(error, sizeof error, "bridge protocol version %u refused: this driver speaks %u",
                 h->protocol_version, b->protocol_version);
    } else if (!h->robot || strcmp(h->robot, b->robot->name) ||
               h->n_joints != (uint32_t)b->robot->n_joints) {
        snprintf(error, sizeof error, "this driver drives a %s with %d joints, not %.32s",
                 b->robot->name, b->robot->n_joints, h->robot ? h->robot : "");
    } else if (!(h->policy_period_s >= 0.001 && h->policy_period_s <= 10)) {
        snprintf(error, sizeof error, "policy period %g s out of range (1 ms..10 s)",
                 h->policy_period_s);
    } else if (/* accepted from here: a new session at the peer's period */
               session(ctx, h->policy_period_s, error, sizeof error) != 0) {
        if (!error[0])
            snprintf(error, sizeof error, "no new session");
    }
    r.accepted = error[0] == 0;
    r.error = error;
    if (r.accepted && id_len <= sizeof b->peer) {
        /* a new session: the peer's seq numbers start again */
        memcpy(b->peer, id, id_len);
        b->peer_len = id_len;
        b->hellos++;
        driver_bridge_log(b, 5, "handshake from %s accepted (policy period %g s)",
                          h->peer ? h->peer : "?", h->policy_period_s);
    } else {
        r.accepted = 0;
        driver_bridge_log(b, 4, "handshake refused: %s", error);
    }
    Pacd__V1__BridgeMessage m = PACD__V1__BRIDGE_MESSAGE__INIT;
    m.body_case = PACD__V1__BRIDGE_MESSAGE__BODY_HELLO;
    m.hello = &r;
    bridge_send(b->sock, id, id_len, &m);
    return r.accepted;
}

int driver_bridge_target(driver_bridge_t *b, const uint8_t *id, size_t id_len,
                         const Pacd__V1__JointCommand *t, int64_t now_ns, driver_target_t *dt)
{
    const int n = b->robot->n_joints;
    if (b->peer_len == 0 || id_len != b->peer_len || memcmp(id, b->peer, id_len) ||
        t->protocol_version != b->protocol_version) {
        b->targets_refused_peer++;
        return -EPERM;
    }
    memset(dt, 0, sizeof *dt);
    dt->seq = t->seq;
    dt->time_ns = now_ns;
    dt->hold = t->hold;
    dt->n = n;
    int position = t->mode == PACD__V1__JOINT_COMMAND__MODE__POSITION;
    dt->mode = position ? DRIVER_TARGET_POSITION : DRIVER_TARGET_VELOCITY;
    if (!t->hold) {
        const double *v = position ? t->positions : t->values;
        size_t nv = position ? t->n_positions : t->n_values;
        int gripper = !position && t->space == PACD__V1__ACTION_SPACE__JOINT_VELOCITY_GRIPPER;
        if (nv != (size_t)(n + gripper))
            dt->n = -1; /* refused by the core, counted there */
        for (int i = 0; i < n && (size_t)i < nv; i++)
            dt->values[i] = v[i];
        if (gripper && nv == (size_t)n + 1) {
            dt->has_gripper = 1;
            dt->gripper = v[n];
        }
    }
    return 0;
}

void driver_bridge_state(driver_bridge_t *b, const driver_bridge_arm_t *arm, int mode,
                         uint64_t last_target_seq, const driver_core_counters_t *c,
                         const driver_bridge_extra_t *extra, driver_bridge_state_msg_t *m)
{
    Pacd__V1__DriverCounters dc = PACD__V1__DRIVER_COUNTERS__INIT;
    dc.ticks = c->ticks;
    dc.targets_received = c->targets_received;
    dc.targets_refused = c->targets_refused + b->targets_refused_peer;
    dc.targets_old = c->targets_old;
    dc.stale_stops = c->stale_stops;
    dc.holds = c->holds;
    dc.velocity_clamps = c->velocity_clamps;
    dc.hellos = b->hellos;
    dc.versions_refused = b->versions_refused;
    if (extra) {
        dc.overruns = extra->overruns;
        dc.messages_dropped = extra->messages_dropped;
        dc.robot_states_refused = extra->robot_states_refused;
        dc.targets_refused += extra->targets_refused;
    }
    m->counters = dc;
    Pacd__V1__Pose pose = PACD__V1__POSE__INIT;
    pose.x = arm->ee_pose[0];
    pose.y = arm->ee_pose[1];
    pose.z = arm->ee_pose[2];
    pose.qw = arm->ee_pose[3];
    pose.qx = arm->ee_pose[4];
    pose.qy = arm->ee_pose[5];
    pose.qz = arm->ee_pose[6];
    m->pose = pose;
    Pacd__V1__DriverState s = PACD__V1__DRIVER_STATE__INIT;
    s.protocol_version = b->protocol_version;
    s.robot = (char *)b->robot->name;
    s.seq = ++b->state_seq;
    s.time_unix_ns = arm->time_unix_ns;
    s.time_mono_ns = arm->time_mono_ns;
    s.n_joint_positions = s.n_joint_velocities = (size_t)arm->n;
    s.joint_positions = (double *)arm->q;
    s.joint_velocities = (double *)arm->dq;
    if (arm->tau) {
        s.n_joint_torques = (size_t)arm->n;
        s.joint_torques = (double *)arm->tau;
    }
    s.end_effector = &m->pose;
    s.gripper_position = arm->gripper_position;
    s.gripper_velocity = arm->gripper_velocity;
    s.grasp = arm->grasp;
    s.mode = (Pacd__V1__DriverState__Mode)mode;
    s.last_target_seq = last_target_seq;
    s.counters = &m->counters;
    m->state = s;
    Pacd__V1__BridgeMessage msg = PACD__V1__BRIDGE_MESSAGE__INIT;
    msg.body_case = PACD__V1__BRIDGE_MESSAGE__BODY_STATE;
    msg.state = &m->state;
    m->msg = msg;
}

int driver_bridge_send(driver_bridge_t *b, const Pacd__V1__BridgeMessage *m)
{
    if (b->peer_len == 0)
        return -ENOTCONN;
    return bridge_send(b->sock, b->peer, b->peer_len, m);
}

int driver_bridge_send_state(driver_bridge_t *b, const driver_bridge_arm_t *arm,
                             const driver_output_t *out, const driver_core_t *core,
                             const driver_bridge_extra_t *extra)
{
    if (b->peer_len == 0)
        return -ENOTCONN;
    driver_core_counters_t c = driver_core_counters(core);
    driver_bridge_state_msg_t m;
    driver_bridge_state(b, arm, out->mode, out->target_seq, &c, extra, &m);
    return driver_bridge_send(b, &m.msg);
}
