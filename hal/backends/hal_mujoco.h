/* hal_mujoco — options and task signal of the `mujoco` backend: MuJoCo
 * physics with rendered cameras (hal_mujoco.c, docs/mujoco.md). Pass a
 * hal_mujoco_options_t as hal_options_t.backend_options with
 * backend = "mujoco". The declarations exist in every build; without MuJoCo
 * hal_new refuses the backend. Its task signal (robosuite Lift) is read
 * with hal_read_task (hal.h). */
#ifndef PACD_HAL_MUJOCO_H
#define PACD_HAL_MUJOCO_H

#include <stdint.h>

#include "hal.h"

/* Zero fields take the defaults. Read by hal_new only (not kept: the strings
 * may be freed once it returns). backend_options == NULL fails (no scene). */
typedef struct {
    const char *scene;        /* MuJoCo XML scene path (required) */
    const char *cameras;      /* comma-separated model camera names to render
                                 and publish; NULL or "" = none */
    int camera_width;         /* pixels; 0 = 128 (RGB stacking) */
    int camera_height;        /* pixels; 0 = 128 */
    const char *camera_endpoint; /* ZeroMQ endpoint a PUB connects to (pacd's
                                    [ingest] camera_bind); NULL = do not publish
                                    (and do not render) */
    const char *state_endpoint;  /* endpoint for robot_state and reward
                                    messages (pacd's [ingest] state_bind); NULL =
                                    do not publish */
    const char *curve_server_key; /* CURVE (Z85, 40 characters) for the two
                                     PUB sockets: the server's public key and
                                     this client's key pair; NULL = no CURVE */
    const char *curve_public_key;
    const char *curve_secret_key;
    uint64_t seed;            /* seed of the reset randomisation (Lift cube) */
    double render_rate_hz;    /* camera/state publication rate; 0 = 20 (the
                                 control rate), 1..100 */
    int physics_rt_priority;  /* SCHED_FIFO priority 1..99 of the physics
                                 thread (below pacd's [pacd] rt_priority); 0 =
                                 normal scheduling; hal_new fails when the
                                 priority cannot be had (CAP_SYS_NICE) */
    const char *ee_site;      /* model site reported as ee_pose; NULL = the
                                 first of grip_site, attachment_site found,
                                 else hal_robot_fk() */
} hal_mujoco_options_t;

#endif
