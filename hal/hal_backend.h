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

/* The in-process kinematic arm (hal_sim.c). options is complete (defaults
 * filled in by hal_new). */
int hal_sim_open(hal_t *hal, const hal_options_t *options, char *err, size_t errlen);

#ifdef PACD_HAVE_MUJOCO
/* MuJoCo physics with rendered cameras (hal_mujoco.c). options complete. */
int hal_mujoco_open(hal_t *hal, const hal_options_t *options, char *err, size_t errlen);
#endif

#endif
