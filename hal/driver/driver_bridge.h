/* driver_bridge — the bridge protocol's server side (docs/bridge.md) as every
 * robot-side driver program speaks it (pacd-fake-driver, pacd-franka-driver,
 * pacd-sawyer-driver):
 * the ROUTER socket it binds, the handshake (which starts a new session in
 * the driver core), targets from the peer that shook hands turned into the
 * core's driver_target_t, and DriverState messages built from the arm's
 * state and the core's counters.
 *
 * Not for a 1 kHz control thread of a real arm: these allocate (protobuf-c)
 * and do socket I/O, though never blocking (ZMQ_DONTWAIT). The fake and the
 * Sawyer driver call them from their one loop (the caller owns the core);
 * the Franka driver from its I/O thread, its core in the control thread
 * (driver_bridge_hello_with, driver_bridge_state). */
#ifndef PACD_DRIVER_BRIDGE_H
#define PACD_DRIVER_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "bridge_wire.h"
#include "driver_core.h"
#include "hal_log.h"
#include "hal_robot.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DRIVER_BRIDGE_MAX_ID 256

typedef struct {
    const hal_robot_t *robot;
    const char *name;           /* the driver's name in its DriverHello (peer) and logs */
    unsigned protocol_version;  /* BRIDGE_PROTOCOL_VERSION unless testing refusals */
    double state_rate_hz;       /* announced in the DriverHello */
    /* CURVE (docs/bridge.md "Security"), read by driver_bridge_open: the
     * driver's key pair file (NULL: none), a directory of admitted client
     * public keys (NULL: any client with the server key), and whether a
     * non-loopback bind without a key is allowed */
    const char *curve_secret_key, *curve_allow;
    int insecure;
    bridge_allow_t *allow;      /* the ZAP handler when curve_allow is set */
    void *ctx, *sock;
    uint8_t peer[DRIVER_BRIDGE_MAX_ID];
    size_t peer_len;            /* 0: no peer shook hands */
    uint64_t hellos, versions_refused, targets_refused_peer, state_seq;
} driver_bridge_t;

/* The arm's state as a driver measured it, for driver_bridge_send_state. */
typedef struct {
    int n;                      /* robot->n_joints */
    const double *q, *dq;       /* n rad, rad/s */
    const double *tau;          /* n N m, or NULL (no torque sensing) */
    double ee_pose[7];          /* x y z m, qw qx qy qz (base frame) */
    double gripper_position, gripper_velocity; /* m, m/s (0 without a gripper) */
    int grasp;
    int64_t time_unix_ns, time_mono_ns; /* when measured (the driver's clocks) */
} driver_bridge_arm_t;

/* Counters the driver program keeps beside the core's (added to the
 * DriverCounters the core's counters fill). */
typedef struct {
    uint64_t overruns, messages_dropped, robot_states_refused;
    uint64_t targets_refused; /* refused by the program itself (added to the core's) */
} driver_bridge_extra_t;

/* One DriverState message as driver_bridge_state fills it: msg points to
 * state, which points to counters and pose (and to the arm's arrays). */
typedef struct {
    Pacd__V1__BridgeMessage msg;
    Pacd__V1__DriverState state;
    Pacd__V1__DriverCounters counters;
    Pacd__V1__Pose pose;
} driver_bridge_state_msg_t;

/* Starts a new session at the peer's policy period (s, already within
 * 1 ms..10 s) for driver_bridge_hello_with: 0, or -1 with the reason the
 * handshake is refused in err. */
typedef int (*driver_bridge_session_fn)(void *ctx, double policy_period_s, char *err,
                                        size_t errlen);

/* Bind a ROUTER socket on endpoint (ZMQ_LINGER 0, send high-water mark 64).
 * b->robot, b->name, b->protocol_version, b->state_rate_hz set by the
 * caller first (protocol_version 0 = BRIDGE_PROTOCOL_VERSION). 0, or -1 with
 * a message in err. Init-only. */
int driver_bridge_open(driver_bridge_t *b, const char *endpoint, char *err, size_t errlen);

/* Close the socket and the context. Safe on a bridge that failed to open. */
void driver_bridge_close(driver_bridge_t *b);

/* Receive one message without blocking: 1 and *out (free with
 * pacd__v1__bridge_message__free_unpacked; NULL for a malformed one) with the
 * sender's routing id in id (DRIVER_BRIDGE_MAX_ID bytes) / *id_len, or 0
 * when nothing is waiting. */
int driver_bridge_recv(driver_bridge_t *b, uint8_t *id, size_t *id_len,
                       Pacd__V1__BridgeMessage **out);

/* Answer a handshake: accepted when the protocol version, the robot and
 * its joint count match and the policy period is within 1 ms..10 s; then
 * the sender becomes the peer and core starts a new session at its period
 * (driver_core_new_session). Refusals are counted (versions_refused for
 * another version) and logged with the reason; so are acceptances. */
void driver_bridge_hello(driver_bridge_t *b, driver_core_t *core, const uint8_t *id,
                         size_t id_len, const Pacd__V1__DriverHello *h);

/* driver_bridge_hello for a driver whose core another thread owns: an
 * acceptable handshake calls session(ctx, period, ...) instead of
 * driver_core_new_session, and is refused with its reason when that fails.
 * 1 when accepted, 0 when refused (both answered). */
int driver_bridge_hello_with(driver_bridge_t *b, driver_bridge_session_fn session, void *ctx,
                             const uint8_t *id, size_t id_len, const Pacd__V1__DriverHello *h);

/* A target message into *dt (received at now_ns, the driver's monotonic
 * clock). 0: from the peer, converted (a wrong shape gives dt->n = -1, which
 * the core refuses and counts); -EPERM: not from the peer that shook hands or
 * of another protocol version (counted in targets_refused_peer), *dt
 * untouched. The caller offers *dt to the core (driver_core_target), or not
 * (fault injection, a driver holding the arm). */
int driver_bridge_target(driver_bridge_t *b, const uint8_t *id, size_t id_len,
                         const Pacd__V1__JointCommand *t, int64_t now_ns, driver_target_t *dt);

/* Fill *m with the next DriverState (b->state_seq advanced): arm, mode
 * (driver_mode_t), the last target's seq, the core's counters c (as
 * driver_core_counters gives them) and extra's (NULL: 0). Nothing is sent:
 * the caller may add errors, then send it (driver_bridge_send) or pack it.
 * m points into arm's arrays: valid while they are. Pure but for the seq. */
void driver_bridge_state(driver_bridge_t *b, const driver_bridge_arm_t *arm, int mode,
                         uint64_t last_target_seq, const driver_core_counters_t *c,
                         const driver_bridge_extra_t *extra, driver_bridge_state_msg_t *m);

/* Send m to the peer: 0, or -errno from bridge_send (-ENOTCONN: no peer). */
int driver_bridge_send(driver_bridge_t *b, const Pacd__V1__BridgeMessage *m);

/* Send a DriverState to the peer (nothing without one): arm, the core's
 * output (mode, last target seq) and counters, with extra's (NULL: 0). 0, or
 * -errno from bridge_send (-ENOTCONN: no peer). */
int driver_bridge_send_state(driver_bridge_t *b, const driver_bridge_arm_t *arm,
                             const driver_output_t *out, const driver_core_t *core,
                             const driver_bridge_extra_t *extra);

/* A log line on stderr: "<prio>NAME: text" (hal_log, the journal's prefix
 * form). */
#define driver_bridge_log(b, prio, ...) hal_log((prio), (b)->name, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
