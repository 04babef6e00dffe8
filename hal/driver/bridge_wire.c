/* bridge_wire — BridgeMessage framing and checks (bridge_wire.h). */
#include "bridge_wire.h"

#include "pacd_err.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <zmq.h>

int bridge_send(void *sock, const void *routing_id, size_t id_len,
                const Pacd__V1__BridgeMessage *m)
{
    uint8_t buf[BRIDGE_MAX_MESSAGE];
    size_t n = pacd__v1__bridge_message__get_packed_size(m);
    if (n > sizeof buf)
        return -EMSGSIZE;
    pacd__v1__bridge_message__pack(m, buf);
    if (routing_id && zmq_send(sock, routing_id, id_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return -zmq_errno();
    if (zmq_send(sock, buf, n, ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    return 0;
}

int bridge_recv(void *sock, void *routing_id, size_t *id_len, Pacd__V1__BridgeMessage **out)
{
    *out = NULL;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&msg);
        return -e;
    }
    if (routing_id) {
        size_t len = zmq_msg_size(&msg);
        if (len > *id_len)
            len = *id_len;
        memcpy(routing_id, zmq_msg_data(&msg), len);
        *id_len = len;
        if (!zmq_msg_more(&msg)) { /* an id without a body: nothing to read */
            zmq_msg_close(&msg);
            return 0;
        }
        if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&msg);
            return -e;
        }
    }
    /* drop any further frames: one body per message */
    int more = zmq_msg_more(&msg);
    if (zmq_msg_size(&msg) <= BRIDGE_MAX_MESSAGE && !more)
        *out = pacd__v1__bridge_message__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
    while (more) {
        zmq_msg_t rest;
        zmq_msg_init(&rest);
        if (zmq_msg_recv(&rest, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rest);
            break;
        }
        more = zmq_msg_more(&rest);
        zmq_msg_close(&rest);
    }
    zmq_msg_close(&msg);
    return 0;
}

int bridge_check_state(const Pacd__V1__DriverState *s, const hal_robot_t *robot,
                       double margin_rad, double factor, char *why, size_t whylen)
{
    const int n = robot->n_joints;
    if (s->protocol_version != BRIDGE_PROTOCOL_VERSION) {
        pacd_errf(why, whylen, "protocol version %u, not %d", s->protocol_version,
                  BRIDGE_PROTOCOL_VERSION);
        return -EINVAL;
    }
    if (!s->robot || strcmp(s->robot, robot->name) != 0) {
        pacd_errf(why, whylen, "a state of another robot (%.32s, not %s)",
                  s->robot ? s->robot : "", robot->name);
        return -EINVAL;
    }
    if ((int)s->n_joint_positions != n || (int)s->n_joint_velocities != n ||
        (s->n_joint_torques != 0 && (int)s->n_joint_torques != n)) {
        pacd_errf(why, whylen, "%zu positions, %zu velocities, %zu torques for %d joints",
                  s->n_joint_positions, s->n_joint_velocities, s->n_joint_torques, n);
        return -EINVAL;
    }
    for (int i = 0; i < n; i++) {
        double q = s->joint_positions[i], dq = s->joint_velocities[i];
        if (!isfinite(q) || !isfinite(dq) ||
            (s->n_joint_torques && !isfinite(s->joint_torques[i]))) {
            pacd_errf(why, whylen, "joint %d: a non-finite value", i + 1);
            return -EINVAL;
        }
        if (q < robot->q_min[i] - margin_rad || q > robot->q_max[i] + margin_rad ||
            fabs(dq) > factor * robot->dq_max[i]) {
            pacd_errf(why, whylen, "joint %d: q %.4g rad / dq %.4g rad/s out of its limits",
                      i + 1, q, dq);
            return -EINVAL;
        }
    }
    if (!isfinite(s->gripper_position) || !isfinite(s->gripper_velocity) ||
        (robot->has_gripper && (s->gripper_position < -margin_rad ||
                                s->gripper_position > robot->gripper_max + margin_rad))) {
        pacd_errf(why, whylen, "gripper %.4g m out of its range", s->gripper_position);
        return -EINVAL;
    }
    const Pacd__V1__Pose *p = s->end_effector;
    if (p && !(isfinite(p->x) && isfinite(p->y) && isfinite(p->z) && isfinite(p->qw) &&
               isfinite(p->qx) && isfinite(p->qy) && isfinite(p->qz))) {
        pacd_errf(why, whylen, "a non-finite end-effector pose");
        return -EINVAL;
    }
    return 0;
}
