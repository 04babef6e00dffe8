/* bridge_wire — BridgeMessage framing and checks (bridge_wire.h). */
#include "bridge_wire.h"

#include "pacd_cert.h"
#include "pacd_err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
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

int bridge_endpoint_local(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6))
        return 1;
    if (strncmp(ep, "tcp://", 6))
        return 0;
    const char *h = ep + 6;
    const char *colon = strrchr(h, ':');
    if (!colon)
        return 0;
    size_t n = (size_t)(colon - h);
    if ((n == 5 && !strncmp(h, "[::1]", 5)) || (n == 9 && !strncmp(h, "localhost", 9)) ||
        (n == 2 && !strncmp(h, "lo", 2)))
        return 1;
    char host[64];
    if (n >= sizeof host)
        return 0;
    memcpy(host, h, n);
    host[n] = '\0';
    unsigned a, b, c, d;
    char tail;
    return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

int bridge_bind(void *sock, const char *endpoint, const char *secret_key_file, int insecure,
                char *err, size_t errlen)
{
    if (secret_key_file && secret_key_file[0]) {
        cert_t own;
        int rc = cert_load(secret_key_file, 1, &own, err, errlen);
        if (rc != 0)
            return rc;
        int one = 1;
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own.secret_key, CERT_KEY_BYTES) != 0) {
            int e = zmq_errno();
            pacd_errf(err, errlen, "cannot enable CURVE: %s (a libzmq without CURVE?)",
                      zmq_strerror(e));
            return -e;
        }
    } else if (!bridge_endpoint_local(endpoint) && !insecure) {
        pacd_errf(err, errlen, "%s is not a loopback or ipc:// endpoint and there is no "
                  "--curve-secret-key: anyone on the network could drive the robot. Give the "
                  "driver a key pair (pacctl keygen, docs/bridge.md \"Security\"), bind to "
                  "127.0.0.1, or, on a cable you trust, pass --insecure", endpoint);
        return -EPERM;
    }
    if (zmq_bind(sock, endpoint) != 0) {
        int e = zmq_errno();
        pacd_errf(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(e));
        return -e;
    }
    return 0;
}

int bridge_curve_client(void *sock, const char *server_z85, const char *public_z85,
                        const char *secret_z85, char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_z85, CERT_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, public_z85, CERT_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret_z85, CERT_Z85_LEN) != 0) {
        int e = zmq_errno();
        pacd_errf(err, errlen, "cannot enable CURVE: %s", zmq_strerror(e));
        return -e;
    }
    return 0;
}
