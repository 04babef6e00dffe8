/* hal_cartesian — Cartesian action spaces mapped to joint velocities by
 * damped least squares on the FK Jacobian (see hal.h for the exact steps). */
#include "hal_cartesian.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define CART_DEFAULT_PERIOD_S 0.05
#define CART_DEFAULT_DAMPING 0.02
/* RGB stacking (PAC paper, Springenberg et al. 2024, Sawyer setup): 0.07 m/s, 1.0 rad/s, 0.25 x 0.25 x 0.2 m box. */
#define CART_VEL_V_MAX 0.07
#define CART_VEL_W_MAX 1.0
/* Franka Cartesian limits (Franka docs, Cartesian control parameters): 1.7 m/s, 2.5 rad/s. */
#define CART_TWIST_V_MAX 1.7
#define CART_TWIST_W_MAX 2.5
static const double box_half[3] = {0.125, 0.125, 0.1};
#define JAC_STEP 1e-6 /* rad */

int hal_cartesian_box(const hal_robot_t *robot, const hal_cartesian_config_t *config,
                      double box_min[3], double box_max[3])
{
    if (!robot || !box_min || !box_max)
        return -EINVAL;
    int given = 0;
    if (config)
        for (int i = 0; i < 3; i++)
            given |= config->box_min[i] != 0 || config->box_max[i] != 0;
    if (given) {
        for (int i = 0; i < 3; i++) {
            if (!isfinite(config->box_min[i]) || !isfinite(config->box_max[i]) ||
                !(config->box_min[i] < config->box_max[i]))
                return -EINVAL;
            box_min[i] = config->box_min[i];
            box_max[i] = config->box_max[i];
        }
        return 0;
    }
    double home[7];
    hal_robot_fk(robot, robot->q_home, home);
    for (int i = 0; i < 3; i++) {
        if (!isfinite(home[i]))
            return -EINVAL;
        box_min[i] = home[i] - box_half[i];
        box_max[i] = home[i] + box_half[i];
    }
    return 0;
}

/* Rotation vector (rad) of the quaternion a * conj(b), both qw qx qy qz. */
static void quat_diff(const double *a, const double *b, double w[3])
{
    /* a * conj(b) */
    double bw = b[0], bx = -b[1], by = -b[2], bz = -b[3];
    double rw = a[0] * bw - a[1] * bx - a[2] * by - a[3] * bz;
    double rx = a[0] * bx + a[1] * bw + a[2] * bz - a[3] * by;
    double ry = a[0] * by - a[1] * bz + a[2] * bw + a[3] * bx;
    double rz = a[0] * bz + a[1] * by - a[2] * bx + a[3] * bw;
    if (rw < 0) {
        rw = -rw;
        rx = -rx;
        ry = -ry;
        rz = -rz;
    }
    double s = sqrt(rx * rx + ry * ry + rz * rz);
    double k = s > 1e-12 ? 2.0 * atan2(s, rw) / s : 2.0;
    w[0] = k * rx;
    w[1] = k * ry;
    w[2] = k * rz;
}

int hal_cartesian_jacobian(const hal_robot_t *robot, const double *q,
                           double jac[6 * HAL_MAX_JOINTS])
{
    if (!robot || !q || !jac || robot->n_joints < 1 || robot->n_joints > HAL_MAX_JOINTS)
        return -EINVAL;
    int n = robot->n_joints;
    for (int j = 0; j < n; j++)
        if (!isfinite(q[j]))
            return -EINVAL;
    double qq[HAL_MAX_JOINTS];
    memcpy(qq, q, sizeof(double) * n);
    for (int j = 0; j < n; j++) {
        double plus[7], minus[7], w[3];
        qq[j] = q[j] + JAC_STEP;
        hal_robot_fk(robot, qq, plus);
        qq[j] = q[j] - JAC_STEP;
        hal_robot_fk(robot, qq, minus);
        qq[j] = q[j];
        quat_diff(plus + 3, minus + 3, w);
        for (int r = 0; r < 3; r++) {
            jac[r * n + j] = (plus[r] - minus[r]) / (2 * JAC_STEP);
            jac[(r + 3) * n + j] = w[r] / (2 * JAC_STEP);
        }
        for (int r = 0; r < 6; r++)
            if (!isfinite(jac[r * n + j]))
                return -EINVAL;
    }
    return 0;
}

/* Solve the 6x6 SPD system a x = b in place (Cholesky). -1 if not SPD. */
static int solve_spd6(double a[36], double b[6])
{
    for (int j = 0; j < 6; j++) {
        double d = a[j * 6 + j];
        for (int k = 0; k < j; k++)
            d -= a[j * 6 + k] * a[j * 6 + k];
        if (!(d > 0))
            return -1;
        d = sqrt(d);
        a[j * 6 + j] = d;
        for (int i = j + 1; i < 6; i++) {
            double s = a[i * 6 + j];
            for (int k = 0; k < j; k++)
                s -= a[i * 6 + k] * a[j * 6 + k];
            a[i * 6 + j] = s / d;
        }
    }
    for (int i = 0; i < 6; i++) { /* L y = b */
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= a[i * 6 + k] * b[k];
        b[i] = s / a[i * 6 + i];
    }
    for (int i = 5; i >= 0; i--) { /* L^T x = y */
        double s = b[i];
        for (int k = i + 1; k < 6; k++)
            s -= a[k * 6 + i] * b[k];
        b[i] = s / a[i * 6 + i];
    }
    return 0;
}

static void hold_cmd(const hal_robot_t *robot, hal_command_t *cmd)
{
    if (!cmd)
        return;
    memset(cmd, 0, sizeof *cmd);
    int n = robot && robot->n_joints > 0 && robot->n_joints <= HAL_MAX_JOINTS
                ? robot->n_joints
                : 0;
    cmd->space = HAL_SPACE_JOINT_VELOCITY;
    cmd->n = n;
}

static double pick(double given, double dflt)
{
    return given > 0 && isfinite(given) ? given : dflt;
}

int hal_cartesian_to_joint(const hal_robot_t *robot, const hal_cartesian_config_t *config,
                           const hal_state_t *state, hal_space_t space, const float *action,
                           int n, hal_command_t *joint_cmd, uint32_t *flags)
{
    uint32_t f = 0;
    hold_cmd(robot, joint_cmd);
    if (flags)
        *flags = 0;
    if (!robot || !state || !action || !joint_cmd || robot->n_joints < 1 ||
        robot->n_joints > HAL_MAX_JOINTS || state->n_joints != robot->n_joints)
        goto bad_shape;
    int nj = robot->n_joints;
    int n_motion;
    if (space == HAL_SPACE_CARTESIAN_VELOCITY)
        n_motion = 4;
    else if (space == HAL_SPACE_CARTESIAN_TWIST)
        n_motion = 6;
    else
        goto bad_shape;
    if (n != n_motion && n != n_motion + 1)
        goto bad_shape;
    for (int i = 0; i < n; i++)
        if (!isfinite(action[i])) {
            f |= HAL_SAFETY_NONFINITE;
            goto hold;
        }
    for (int j = 0; j < nj; j++)
        if (!isfinite(state->q[j])) {
            f |= HAL_SAFETY_NONFINITE;
            goto hold;
        }

    int twist = space == HAL_SPACE_CARTESIAN_TWIST;
    double period = CART_DEFAULT_PERIOD_S, damping = CART_DEFAULT_DAMPING;
    double v_max = twist ? CART_TWIST_V_MAX : CART_VEL_V_MAX;
    double w_max = twist ? CART_TWIST_W_MAX : CART_VEL_W_MAX;
    if (config) {
        period = pick(config->period_s, period);
        damping = pick(config->damping, damping);
        v_max = pick(config->v_max, v_max);
        w_max = pick(config->w_max, w_max);
    }
    double bmin[3], bmax[3];
    if (hal_cartesian_box(robot, config, bmin, bmax) != 0)
        goto bad_shape;

    double x[6] = {0};
    for (int i = 0; i < 3; i++)
        x[i] = action[i];
    if (twist)
        for (int i = 0; i < 3; i++)
            x[3 + i] = action[3 + i];
    else
        x[5] = action[3];

    double vn = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
    if (vn > v_max) {
        for (int i = 0; i < 3; i++)
            x[i] *= v_max / vn;
        f |= HAL_SAFETY_CLAMPED;
    }
    double wn = sqrt(x[3] * x[3] + x[4] * x[4] + x[5] * x[5]);
    if (wn > w_max) {
        for (int i = 3; i < 6; i++)
            x[i] *= w_max / wn;
        f |= HAL_SAFETY_CLAMPED;
    }

    double pose[7];
    hal_robot_fk(robot, state->q, pose);
    for (int i = 0; i < 3; i++) {
        double v = x[i];
        if (v > 0) {
            double lim = fmax(bmax[i] - pose[i], 0.0) / period;
            if (v > lim) {
                x[i] = lim;
                f |= HAL_SAFETY_WORKSPACE;
            }
        } else if (v < 0) {
            double lim = fmax(pose[i] - bmin[i], 0.0) / period;
            if (-v > lim) {
                x[i] = -lim;
                f |= HAL_SAFETY_WORKSPACE;
            }
        }
    }

    double jac[6 * HAL_MAX_JOINTS];
    if (hal_cartesian_jacobian(robot, state->q, jac) != 0) {
        f |= HAL_SAFETY_NONFINITE;
        goto hold;
    }
    /* A = J J^T + lambda^2 I (6 x 6), solve A y = x, dq = J^T y. */
    double a[36], y[6];
    for (int r = 0; r < 6; r++) {
        for (int c = 0; c < 6; c++) {
            double s = 0;
            for (int j = 0; j < nj; j++)
                s += jac[r * nj + j] * jac[c * nj + j];
            a[r * 6 + c] = s + (r == c ? damping * damping : 0.0);
        }
        y[r] = x[r];
    }
    if (solve_spd6(a, y) != 0) {
        f |= HAL_SAFETY_NONFINITE;
        goto hold;
    }
    for (int j = 0; j < nj; j++) {
        double s = 0;
        for (int r = 0; r < 6; r++)
            s += jac[r * nj + j] * y[r];
        joint_cmd->values[j] = s;
    }
    joint_cmd->n = nj;
    joint_cmd->space = HAL_SPACE_JOINT_VELOCITY;
    if (n == n_motion + 1) {
        if (robot->has_gripper) {
            joint_cmd->values[nj] = action[n_motion];
            joint_cmd->n = nj + 1;
            joint_cmd->space = HAL_SPACE_JOINT_VELOCITY_GRIPPER;
        } else {
            f |= HAL_SAFETY_GRIPPER_IGNORED;
        }
    }
    if (flags)
        *flags = f;
    return 0;

bad_shape:
    f |= HAL_SAFETY_BAD_SHAPE;
hold:
    hold_cmd(robot, joint_cmd);
    if (flags)
        *flags = f | HAL_SAFETY_HELD;
    return -EINVAL;
}
