/* bridge_wire — BridgeMessage framing and checks (bridge_wire.h). */
#include "bridge_wire.h"

#include "pacd_cert.h"
#include "pacd_err.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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
        int bad = zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
                  zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own.secret_key, CERT_KEY_BYTES) != 0;
        memset(&own, 0, sizeof own); /* the secret stays in libzmq only */
        if (bad) {
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

/* ---- the driver's allow-list (ZAP handler) ---- */

struct bridge_allow_s {
    void *rep;                   /* inproc://zeromq.zap.01, the thread's only */
    pthread_t thread;
    atomic_int running;
    atomic_uint_least64_t refused, admitted;
    uint8_t (*keys)[CERT_KEY_BYTES];
    size_t n_keys;
    char dir[256], name[64];
};

static int allow_has(const bridge_allow_t *a, const uint8_t *key)
{
    for (size_t i = 0; i < a->n_keys; i++)
        if (!memcmp(a->keys[i], key, CERT_KEY_BYTES))
            return 1;
    return 0;
}

/* one ZAP request: version, request id, domain, address, identity,
 * mechanism, credentials; the reply: version, request id, status code,
 * status text, user id, metadata */
static void allow_serve(bridge_allow_t *a)
{
    zmq_msg_t f[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], a->rep, 0) < 0) {
            zmq_msg_close(&f[n]);
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    while (more) { /* a malformed request: drain it */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, a->rep, 0) < 0) {
            zmq_msg_close(&x);
            break;
        }
        more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    if (n >= 2) {
        int ok = n == 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
                 zmq_msg_size(&f[6]) == CERT_KEY_BYTES && allow_has(a, zmq_msg_data(&f[6]));
        if (ok) {
            atomic_fetch_add(&a->admitted, 1);
        } else {
            uint64_t k = atomic_fetch_add(&a->refused, 1) + 1;
            char z85[CERT_Z85_LEN + 1] = "(none)", addr[64] = "";
            if (n == 7 && zmq_msg_size(&f[6]) == CERT_KEY_BYTES)
                zmq_z85_encode(z85, zmq_msg_data(&f[6]), CERT_KEY_BYTES);
            if (n >= 4) {
                size_t l = zmq_msg_size(&f[3]) < sizeof addr - 1 ? zmq_msg_size(&f[3])
                                                                 : sizeof addr - 1;
                memcpy(addr, zmq_msg_data(&f[3]), l);
                addr[l] = '\0';
                for (size_t i = 0; i < l; i++)
                    if (addr[i] < 0x20 || addr[i] > 0x7e)
                        addr[i] = '?';
            }
            fprintf(stderr, "<4>%s: CURVE: a client key not in --curve-allow %s refused (key %s, "
                    "from %s; %llu refused)\n", a->name, a->dir, z85, addr,
                    (unsigned long long)k);
            fflush(stderr);
        }
        const char *code = ok ? "200" : "400", *text = ok ? "OK" : "key not allowed";
        zmq_send(a->rep, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(a->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        zmq_send(a->rep, code, 3, ZMQ_SNDMORE);
        zmq_send(a->rep, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(a->rep, "", 0, ZMQ_SNDMORE);
        zmq_send(a->rep, "", 0, 0);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *allow_thread(void *arg)
{
    bridge_allow_t *a = arg;
    zmq_pollitem_t item = {.socket = a->rep, .events = ZMQ_POLLIN};
    while (atomic_load(&a->running)) {
        if (zmq_poll(&item, 1, 100) > 0 && (item.revents & ZMQ_POLLIN))
            allow_serve(a);
    }
    return NULL;
}

static void allow_free(bridge_allow_t *a)
{
    if (a->rep)
        zmq_close(a->rep);
    free(a->keys);
    free(a);
}

bridge_allow_t *bridge_allow_start(void *ctx, const char *dir, const char *name, char *err,
                                   size_t errlen)
{
    bridge_allow_t *a = calloc(1, sizeof *a);
    if (!a) {
        pacd_errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    snprintf(a->name, sizeof a->name, "%s", name);
    DIR *d = opendir(dir);
    if (!d) {
        pacd_errf(err, errlen, "--curve-allow %s: %s", dir, strerror(errno));
        allow_free(a);
        return NULL;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cert_t c;
        if (cert_load(path, 0, &c, err, errlen) != 0) {
            closedir(d);
            allow_free(a);
            return NULL;
        }
        if (c.has_secret) {
            pacd_errf(err, errlen, "--curve-allow %s: %s holds a secret key: list public "
                      "certificates only", dir, e->d_name);
            memset(&c, 0, sizeof c);
            closedir(d);
            allow_free(a);
            return NULL;
        }
        void *k = realloc(a->keys, (a->n_keys + 1) * sizeof *a->keys);
        if (!k) {
            pacd_errf(err, errlen, "out of memory");
            closedir(d);
            allow_free(a);
            return NULL;
        }
        a->keys = k;
        memcpy(a->keys[a->n_keys++], c.public_key, CERT_KEY_BYTES);
    }
    closedir(d);
    a->rep = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (!a->rep || zmq_setsockopt(a->rep, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(a->rep, "inproc://zeromq.zap.01") != 0) {
        pacd_errf(err, errlen, "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
        allow_free(a);
        return NULL;
    }
    atomic_init(&a->running, 1);
    atomic_init(&a->refused, 0);
    atomic_init(&a->admitted, 0);
    int rc = pthread_create(&a->thread, NULL, allow_thread, a);
    if (rc != 0) {
        pacd_errf(err, errlen, "cannot start the ZAP thread: %s", strerror(rc));
        allow_free(a);
        return NULL;
    }
    return a;
}

uint64_t bridge_allow_refused(const bridge_allow_t *a)
{
    return atomic_load(&((bridge_allow_t *)a)->refused);
}

uint64_t bridge_allow_admitted(const bridge_allow_t *a)
{
    return atomic_load(&((bridge_allow_t *)a)->admitted);
}

void bridge_allow_stop(bridge_allow_t *a)
{
    if (!a)
        return;
    atomic_store(&a->running, 0);
    pthread_join(a->thread, NULL);
    allow_free(a);
}
