/* bridge_wire — the bridge protocol's framing, shared by pacd's `remote`
 * backend and the robot-side drivers (docs/bridge.md): one
 * pacd.v1.BridgeMessage per ZeroMQ message (after the routing-id frame on
 * the driver's ROUTER socket), the protocol version, and the checks both
 * sides make on what arrives. Not for the control loop: these allocate
 * (protobuf-c unpack) and do socket I/O; call them from I/O threads. */
#ifndef PACD_BRIDGE_WIRE_H
#define PACD_BRIDGE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "hal_robot.h"
#include "pacd_proto.h"

/* The bridge protocol version both sides put in every DriverHello,
 * JointCommand and DriverState; a handshake with another version is refused. */
#define BRIDGE_PROTOCOL_VERSION 1

/* Largest BridgeMessage either side sends or accepts, bytes. */
#define BRIDGE_MAX_MESSAGE 4096

/* Pack m and send it on sock (ZMQ_DONTWAIT | flags: never blocks). When
 * routing_id is not NULL (the driver's ROUTER), that frame goes first.
 * 0, or -errno (-EAGAIN: no peer or its queue is full; -EMSGSIZE). */
int bridge_send(void *sock, const void *routing_id, size_t id_len,
                const Pacd__V1__BridgeMessage *m);

/* Receive one message without blocking. With routing_id (ROUTER side) the
 * peer's id is copied there (up to *id_len bytes; *id_len set to its
 * length). *out: the unpacked message (free with
 * pacd__v1__bridge_message__free_unpacked) or NULL. 0: a message (or a
 * malformed one: *out NULL), -EAGAIN: nothing waiting, -errno. */
int bridge_recv(void *sock, void *routing_id, size_t *id_len, Pacd__V1__BridgeMessage **out);

/* A DriverState's arm fields against robot: the protocol version, the robot
 * name, n_joints positions and velocities (torques none or n_joints), every
 * number finite, positions within [q_min - margin, q_max + margin],
 * |velocity| <= factor * dq_max, gripper in [-margin, gripper_max + margin]
 * on robots with one. 0, or -EINVAL with the reason in why. Pure. */
int bridge_check_state(const Pacd__V1__DriverState *s, const hal_robot_t *robot,
                       double margin_rad, double factor, char *why, size_t whylen);

/* ---- CURVE on the bridge (docs/bridge.md, "Security") ----
 * The driver is the CURVE server (its key pair: --curve-secret-key), pacd
 * the client (it knows the driver's public key). Init-only: these read files
 * and set socket options; call them before the first send/receive. */

/* 1 when endpoint is a tcp:// address on loopback (127.x.y.z, [::1],
 * localhost, lo) or an ipc:// path: the bridge may run there without CURVE.
 * Pure string logic. */
int bridge_endpoint_local(const char *endpoint);

/* The driver's bind: with secret_key_file (a key pair file as `pacctl keygen`
 * writes, PATH_secret; mode 600, else refused) the ROUTER sock becomes a
 * CURVE server with that key, then binds endpoint. Without a key, a
 * non-local endpoint (bridge_endpoint_local) is refused unless insecure.
 * 0, or a negative errno with the reason in err (-EACCES: a secret key file
 * others can read; -EPERM: a network bind without a key; -ENOENT/-EINVAL: an
 * unreadable or malformed key file; the bind's own errno). */
int bridge_bind(void *sock, const char *endpoint, const char *secret_key_file, int insecure,
                char *err, size_t errlen);

/* pacd's side: make the DEALER sock a CURVE client of the driver whose
 * public key is server_z85, with the key pair public_z85 / secret_z85 (40
 * Z85 characters each). Call before zmq_connect. 0, or -errno with err. */
/* The driver's allow-list of client keys (--curve-allow DIR): a ZAP
 * handler (RFC 27) on ctx, in its own thread, that admits a CURVE client
 * only when its public key is one of the certificates in dir (public key
 * files as `pacctl keygen` writes; read once at start). Start it before
 * bridge_bind (libzmq admits every key while no handler is bound); each
 * refusal is counted and logged to stderr as "<4>name: ...". Stop it before
 * zmq_ctx_term. NULL with err on an unreadable directory or certificate. */
typedef struct bridge_allow_s bridge_allow_t;
bridge_allow_t *bridge_allow_start(void *ctx, const char *dir, const char *name, char *err,
                                   size_t errlen);
/* Refusals and admissions so far (any thread). */
uint64_t bridge_allow_refused(const bridge_allow_t *a);
uint64_t bridge_allow_admitted(const bridge_allow_t *a);
/* Stop the thread, close its socket, free a (NULL: nothing). */
void bridge_allow_stop(bridge_allow_t *a);

int bridge_curve_client(void *sock, const char *server_z85, const char *public_z85,
                        const char *secret_z85, char *err, size_t errlen);

#endif
