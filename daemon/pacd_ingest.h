/* ingest — camera frames and robot state from ZeroMQ into latest-value slots.
 *
 * One thread owns two SUB sockets (docs/protocol.md): the camera socket
 * (topic "camera/<name>", pacd.v1.CameraFrame) and the state socket (topic
 * "robot_state", pacd.v1.RobotState; topic "reward", pacd.v1.Reward). Each
 * message is decoded and validated by pacd_validate.h (field limits of
 * docs/protocol.md); a malformed, oversized or mis-shaped one is dropped
 * and counted, never fatal. Accepted values land in per-stream triple
 * buffers, stamped with their CLOCK_MONOTONIC arrival time, which the control
 * loop reads without locks.
 *
 * Threading: ingest_new/ingest_destroy are init-only. ingest_latest_* and
 * ingest_take_reward are RT-safe and must be called from one consumer thread
 * (the control loop). ingest_get_stats is safe from any thread.
 */
#ifndef PACD_INGEST_H
#define PACD_INGEST_H

#include <stdint.h>

#include "hal_robot.h"
#include "pacd_auth.h"
#include "pacd_config.h"

typedef struct ingest ingest_t;

/* The newest accepted frame of one camera, decoded to RGB8. */
typedef struct {
    const uint8_t *pixels;       /* height x width x 3 bytes, row-major, R G B */
    uint32_t width, height;      /* pixels; equal to the config's */
    uint64_t seq;                /* publisher's counter */
    int64_t capture_time_unix_ns;
    int64_t arrival_mono_ns;     /* CLOCK_MONOTONIC when ingest accepted it */
    int encoding;                /* encoding it arrived in (pacd.v1.CameraFrame.Encoding) */
} ingest_frame_t;

typedef struct {
    uint64_t frames_received;    /* accepted camera frames */
    uint64_t frames_malformed;   /* not a 2-part [topic, protobuf] message, bad protobuf, bad JPEG */
    uint64_t frames_oversized;   /* payload larger than the camera's frame can be */
    uint64_t frames_misshaped;   /* unknown camera, wrong size, data size != width*height*3 */
    uint64_t states_received;
    uint64_t states_rejected;    /* bad protobuf, wrong joint count, non-finite values */
    uint64_t rewards_received;
    uint64_t teleop_actions_received;
    uint64_t peers_disconnected; /* connections libzmq dropped (e.g. over ZMQ_MAXMSGSIZE) */
    uint64_t frames_resized;     /* accepted after area-averaging to the configured size */
    uint64_t frames_too_large;   /* declared width x height above max_frame_pixels (in oversized) */
    uint64_t names_refused;      /* names with NUL / control bytes (in malformed / rejected) */
    uint64_t values_rejected;    /* a number non-finite or outside docs/protocol.md's limits */
    uint64_t rewards_rejected;   /* Reward messages refused (in states_rejected) */
} ingest_stats_t;

#define INGEST_MAX_TELEOP 16
#define INGEST_MAX_TASK_INFO 8
#define INGEST_TASK_NAME 32

/* Task measurements that came with a Reward (pacd.v1.Reward.info). */
typedef struct {
    int n;
    char name[INGEST_MAX_TASK_INFO][INGEST_TASK_NAME];
    double value[INGEST_MAX_TASK_INFO];
} ingest_task_info_t;

/* Bind the sockets named in cfg (camera_bind, state_bind; "" = not bound),
 * set ZMQ_MAXMSGSIZE = cfg->max_message_bytes, allocate three frame buffers
 * per configured camera (and, when a camera has resize = true, one decode
 * buffer of cfg->max_frame_pixels * 3 bytes; nothing grows later) and start
 * the thread. `n_joints` is the arm's joint
 * count (robot states with another count are rejected). zmq_ctx is shared,
 * not owned. `auth` (may be NULL, not owned, outlives ingest) secures the
 * sockets (auth_bind) and counts their failed handshakes. Init-only. Caller
 * owns the result; NULL + message in err when a socket cannot be bound (e.g.
 * address in use) or memory is short. */
ingest_t *ingest_new(const config_t *cfg, void *zmq_ctx, auth_t *auth, int n_joints, char *err,
                     size_t errlen);

/* Stop the thread, close the sockets, free; *self_p = NULL. NULL-safe. */
void ingest_destroy(ingest_t **self_p);

/* The newest frame of camera `index` (config order), or NULL if none has
 * arrived yet. The pointer stays valid until the next call with the same
 * index. RT-safe (one atomic exchange). */
const ingest_frame_t *ingest_latest_frame(ingest_t *self, int index);

/* Copy the newest robot state into *state (time_mono_ns = arrival time).
 * RT-safe. Returns 1 when a state exists, 0 when none has arrived. */
int ingest_latest_state(ingest_t *self, hal_state_t *state);

/* Copy the newest robot state if it arrived since the last call of this
 * function (1), else leave *state alone (0). RT-safe. Shadow mode makes one
 * step per robot state with it; do not mix with ingest_latest_state. */
int ingest_take_state(ingest_t *self, hal_state_t *state);

/* A teleoperator action as it arrived (topic "teleop_action", pacd.v1.Action). */
typedef struct {
    int n;                    /* values (1..INGEST_MAX_TELEOP); 0: none has arrived */
    float values[INGEST_MAX_TELEOP]; /* in the units of its action space */
    int space;                /* pacd.v1.ActionSpace value (hal_space_t numbering) */
    uint64_t seq;             /* the publisher's counter */
    int64_t arrival_mono_ns;  /* when pacd received it (CLOCK_MONOTONIC) */
} ingest_teleop_t;

/* The newest teleoperator action into *out (out->n = 0: none has arrived
 * yet). Returns out->n. RT-safe. */
int ingest_latest_teleop(ingest_t *self, ingest_teleop_t *out);

/* If a Reward arrived since the last call, store it (and its info, names cut
 * to 31 bytes, at most 8; info may be NULL) and return 1; else 0. Rewards
 * with a value outside docs/protocol.md's field limits never arrive here.
 * RT-safe. */
int ingest_take_reward(ingest_t *self, float *reward, float *discount, int *is_terminal,
                       ingest_task_info_t *info);

/* The live view's camera tap ([foxglove] enabled with image_rate_hz > 0,
 * docs/monitoring.md). While camera `index` is wanted, the ingest thread
 * copies an accepted frame into a second set of three buffers at most
 * image_rate_hz times a second; the control loop's buffers are not touched.
 * ingest_viewer_want: any thread. ingest_viewer_frame: one non-RT consumer
 * (the live view's thread): the newest tapped frame if it is new since the
 * last call, else NULL (also when the tap is off); valid until the next call
 * with the same index. */
void ingest_viewer_want(ingest_t *self, int index, int want);
const ingest_frame_t *ingest_viewer_frame(ingest_t *self, int index);

/* Snapshot of the counters. Any thread. */
void ingest_get_stats(ingest_t *self, ingest_stats_t *stats);

#endif
