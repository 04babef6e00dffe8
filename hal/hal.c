/* hal — backend dispatch and the RT-safe wrappers over the ops table. */
#include "hal.h"
#include "hal_backend.h"
#include "hal_mujoco.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Sawyer's motor controller leaves its control mode after 0.2 s without a
 * command (Intera's joint_command_timeout, 0.2 s as usually set). */
#define HAL_DEFAULT_COMMAND_TIMEOUT_S 0.2

typedef struct {
    const char *name;
    int (*open)(hal_t *hal, const hal_options_t *options, const void *backend_options, char *err,
                size_t errlen);
} hal_backend_entry_t;

static const hal_backend_entry_t backends[] = {
    {"sim", hal_sim_open},
    {"remote", hal_remote_open},
#ifdef PACD_HAVE_MUJOCO
    {"mujoco", hal_mujoco_open},
#endif
};

#ifdef PACD_HAVE_MUJOCO
#define HAL_BACKEND_NAMES "sim, remote, mujoco"
#else
#define HAL_BACKEND_NAMES "sim, remote (mujoco: rebuild with libmujoco-dev installed, -Dmujoco=enabled)"
#endif

/* 0 if the description is usable by a backend and the safety filter. */
static int check_robot(const hal_robot_t *robot, char *err, size_t errlen)
{
    if (!robot) {
        pacd_errf(err, errlen, "hal: no robot description given; "
                               "pass hal_robot_find(\"panda\") or (\"sawyer\")");
        return -EINVAL;
    }
    const char *name = robot->name ? robot->name : "(unnamed)";
    if (robot->n_joints < 1 || robot->n_joints > HAL_MAX_JOINTS) {
        pacd_errf(err, errlen, "hal: robot %s has %d joints; 1..%d are supported",
                  name, robot->n_joints, HAL_MAX_JOINTS);
        return -EINVAL;
    }
    for (int i = 0; i < robot->n_joints; i++) {
        if (!isfinite(robot->q_min[i]) || !isfinite(robot->q_max[i]) ||
            !(robot->q_min[i] < robot->q_max[i]) || !(robot->dq_max[i] > 0) ||
            !isfinite(robot->dq_max[i]) || !(robot->ddq_max[i] > 0) ||
            !isfinite(robot->ddq_max[i]) || !(robot->q_home[i] >= robot->q_min[i]) ||
            !(robot->q_home[i] <= robot->q_max[i])) {
            pacd_errf(err, errlen,
                      "hal: robot %s joint %d has inconsistent limits (need q_min < "
                      "q_max, q_home inside, dq_max > 0, ddq_max > 0); fix the description",
                      name, i + 1);
            return -EINVAL;
        }
    }
    if (robot->has_gripper &&
        !(robot->gripper_max > 0 && isfinite(robot->gripper_max) &&
          robot->gripper_speed > 0 && isfinite(robot->gripper_speed))) {
        pacd_errf(err, errlen,
                  "hal: robot %s has a gripper but gripper_max/gripper_speed are not "
                  "positive; fix the description",
                  name);
        return -EINVAL;
    }
    return 0;
}

hal_t *hal_new(const hal_robot_t *robot, const hal_options_t *options, char *err,
               size_t errlen)
{
    if (check_robot(robot, err, errlen) != 0)
        return NULL;

    hal_options_t opts = {0};
    if (options)
        opts = *options;
    if (!opts.backend)
        opts.backend = "sim";
    if (opts.command_timeout_s == 0)
        opts.command_timeout_s = HAL_DEFAULT_COMMAND_TIMEOUT_S;
    if (!(opts.command_timeout_s > 0 && opts.command_timeout_s <= 60)) {
        pacd_errf(err, errlen,
                  "hal: command_timeout_s = %g is out of range; set it in (0, 60] s "
                  "(or 0 for the default 0.2)",
                  opts.command_timeout_s);
        return NULL;
    }
    if (opts.initial_q) {
        for (int i = 0; i < robot->n_joints; i++) {
            double q = opts.initial_q[i];
            if (!isfinite(q) || q < robot->q_min[i] || q > robot->q_max[i]) {
                pacd_errf(err, errlen,
                          "hal: initial_q[%d] = %g rad is outside joint %d's range "
                          "[%g, %g] of %s; give a pose inside the limits",
                          i, q, i + 1, robot->q_min[i], robot->q_max[i], robot->name);
                return NULL;
            }
        }
    }

    const hal_backend_entry_t *entry = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i].name, opts.backend) == 0)
            entry = &backends[i];
    if (!entry) {
        pacd_errf(err, errlen, "hal: unknown backend '%s'; this build has: " HAL_BACKEND_NAMES,
                  opts.backend);
        return NULL;
    }

    hal_t *self = calloc(1, sizeof *self);
    if (!self) {
        pacd_errf(err, errlen, "hal: out of memory");
        return NULL;
    }
    self->robot = robot;
    if (entry->open(self, &opts, opts.backend_options, err, errlen) != 0) {
        free(self);
        return NULL;
    }
    const hal_ops_t *ops = self->ops;
    if (!ops || ops->api_version != HAL_API_VERSION || !ops->read_state || !ops->command ||
        !ops->hold || !ops->destroy) {
        pacd_errf(err, errlen,
                  "hal: backend '%s' speaks HAL API version %d or lacks a required "
                  "operation; this pacd needs version %d: rebuild the backend",
                  opts.backend, ops ? ops->api_version : -1, HAL_API_VERSION);
        if (ops && ops->destroy)
            ops->destroy(self);
        free(self);
        return NULL;
    }
    if (opts.stepped && !ops->advance) {
        pacd_errf(err, errlen,
                  "hal: backend '%s' has no stepped mode (simulated clock): it runs on the "
                  "real clock; the simulated clock needs the mujoco backend",
                  opts.backend);
        ops->destroy(self);
        free(self);
        return NULL;
    }
    return self;
}

void hal_destroy(hal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hal_t *self = *self_p;
    if (self->ops && self->ops->destroy)
        self->ops->destroy(self);
    free(self);
    *self_p = NULL;
}

int hal_read_state(hal_t *self, hal_state_t *state)
{
    if (!self || !state)
        return -EINVAL;
    return self->ops->read_state(self, state);
}

int hal_command(hal_t *self, const hal_command_t *cmd)
{
    if (!self)
        return -EINVAL;
    if (!cmd) {
        self->ops->hold(self);
        return -EINVAL;
    }
    return self->ops->command(self, cmd);
}

int hal_hold(hal_t *self)
{
    if (!self)
        return -EINVAL;
    return self->ops->hold(self);
}

int hal_counters(hal_t *self, hal_counters_t *counters)
{
    if (!self || !counters)
        return -EINVAL;
    /* a backend sets the counters it knows; the others read 0 / "" */
    memset(counters, 0, sizeof *counters);
    if (!self->ops->counters)
        return -ENOTSUP;
    return self->ops->counters(self, counters);
}

int hal_reset(hal_t *self)
{
    if (!self)
        return -EINVAL;
    if (!self->ops->reset)
        return -ENOTSUP;
    return self->ops->reset(self, NULL);
}

int hal_reset_seeded(hal_t *self, uint64_t seed)
{
    if (!self)
        return -EINVAL;
    if (!self->ops->reset)
        return -ENOTSUP;
    return self->ops->reset(self, &seed);
}

int hal_read_task(hal_t *self, hal_task_t *task)
{
    if (!self || !task)
        return -EINVAL;
    if (!self->ops->read_task)
        return -ENOTSUP;
    return self->ops->read_task(self, task);
}

int hal_advance(hal_t *self, int64_t duration_ns, hal_instant_t *out)
{
    if (!self || duration_ns < 0)
        return -EINVAL;
    if (!self->ops->advance)
        return -ENOTSUP;
    return self->ops->advance(self, duration_ns, out);
}

int hal_instant(hal_t *self, hal_instant_t *out)
{
    if (!self || !out)
        return -EINVAL;
    if (!self->ops->instant)
        return -ENOTSUP;
    return self->ops->instant(self, out);
}

const hal_robot_t *hal_driven_robot(const hal_t *self)
{
    return self ? self->robot : NULL;
}

const char *hal_backend_name(const hal_t *self)
{
    return self ? self->ops->name : NULL;
}

const char *hal_backend_names(void)
{
    return HAL_BACKEND_NAMES;
}
