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

#endif
