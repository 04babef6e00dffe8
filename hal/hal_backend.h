/* hal_backend — internal: how hal.c reaches the backends.
 *
 * A backend's open function fills hal->ops (a static const table) and
 * hal->impl, starts whatever it needs, and returns 0; or returns -errno with
 * a message in err and leaves nothing allocated. hal.c checks the ops
 * table's api_version and required entries afterwards. Init-only. */
#ifndef PACD_HAL_BACKEND_H
#define PACD_HAL_BACKEND_H

#include "hal.h"

/* Writes "what went wrong; what to do" into err (if err && errlen). */
void hal_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A joint command as a backend's thread sees it, carried through its
 * seqbox mailbox. Size a multiple of 8 bytes. */
typedef struct {
    uint64_t seq;          /* 1, 2, ... per valid command; 0 = none yet */
    int64_t time_mono_ns;  /* when hal_command() was called */
    uint64_t hold_seen;    /* hold requests counted when it was sent: later holds win */
    int32_t has_gripper;   /* 1: gripper value present */
    int32_t pad;
    double dq[HAL_MAX_JOINTS]; /* rad/s */
    double gripper;        /* -1 close .. 1 open (fraction of gripper_speed) */
} hal_backend_cmd_t;

/* Check cmd against robot (joint space of the robot's shape, gripper only
 * when it has one, finite values) and fill *out (seq left 0, time now).
 * 0, or -EINVAL when the command is refused. RT-safe. */
int hal_backend_command(const hal_robot_t *robot, const hal_command_t *cmd, uint64_t hold_seen,
                        hal_backend_cmd_t *out);

/* The in-process kinematic arm (hal_sim.c). options is complete (defaults
 * filled in by hal_new). */
int hal_sim_open(hal_t *hal, const hal_options_t *options, char *err, size_t errlen);

#ifdef PACD_HAVE_MUJOCO
/* MuJoCo physics with rendered cameras (hal_mujoco.c). options complete. */
int hal_mujoco_open(hal_t *hal, const hal_options_t *options, char *err, size_t errlen);
#endif

#endif
