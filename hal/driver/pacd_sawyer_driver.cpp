/* pacd-sawyer-driver — the robot-side driver for a Rethink Sawyer (Intera
 * over ROS 1): the driver core (driver_core.h) behind the bridge protocol
 * (docs/bridge.md, driver_bridge.h; the same as pacd-fake-driver) on one
 * side, Intera's topics on the other.
 *
 *   pacd-sawyer-driver --bind ENDPOINT [--state-rate-hz 100]
 *                      [--command-timeout-s 0.2] [--robot-state-max-age-ms 100]
 *                      [--wait-s 10]
 *   (ROS_MASTER_URI: the robot's master; ROS_IP / ROS_HOSTNAME: this host)
 *
 * Robot side:
 *   - publishes intera_core_msgs/JointCommand in VELOCITY_MODE (2) at
 *     100 Hz on /robot/limb/right/joint_command, names right_j0..right_j6,
 *     the core's joint velocities, while the core tracks or the arm still
 *     moves, then 10 zero commands, then nothing (Intera falls back to
 *     holding its position when commands stop for longer than the timeout);
 *   - publishes std_msgs/Float64 on /robot/limb/right/joint_command_timeout
 *     (latched, --command-timeout-s) and std_msgs/Bool true on
 *     /robot/set_super_enable (latched: enables the robot) at start;
 *   - reads sensor_msgs/JointState on /robot/joint_states (the right_j*
 *     joints by name; others, e.g. head_pan, ignored; a message with none of
 *     them is someone else's and ignored) and
 *     intera_core_msgs/EndpointState on /robot/limb/right/endpoint_state
 *     (pose), sent to pacd as DriverState at --state-rate-hz.
 *
 * Bad input from the robot (a joint state with a right_j* joint missing or
 * twice, arrays of another length, a non-finite number; a non-finite pose
 * or one marked not valid): refused, counted
 * (DriverCounters.robot_states_refused), logged (the first five, each new
 * reason, every 100th). The driver starts once it has a valid joint state
 * and a valid pose (--wait-s). While the newest joint state is refused, or
 * the newest joint state or valid pose is older than
 * --robot-state-max-age-ms (100: ten of the robot's periods), the driver
 * holds the arm: pacd's targets are not taken, the
 * core decelerates to rest within the limits and no DriverState goes to pacd
 * (its link times out and it holds too); a valid joint state ends that.
 *
 * Threads: roscpp's spinner takes the robot's messages into a mutex-guarded
 * mailbox; the main thread runs the 1 ms loop of pacd-fake-driver (absolute
 * CLOCK_MONOTONIC deadlines, the bridge socket never blocks) and publishes.
 * SIGTERM / SIGINT: the arm brought to rest within the limits (targets no
 * longer taken; at most 5 s), a zero command, exit 0. */
#include <ros/ros.h>
#include <sensor_msgs/JointState.h>
#include <std_msgs/Bool.h>
#include <std_msgs/Float64.h>

#include <intera_core_msgs/EndpointState.h>
#include <intera_core_msgs/JointCommand.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

extern "C" {
#include "driver_bridge.h"
#include "driver_core.h"
#include "hal_robot.h"
#include "rt_clock.h"
}

namespace {

const int64_t TICK_NS = 1000000;
const int64_t COMMAND_NS = 10000000;      /* 100 Hz */
const int N = 7;
const char *const JOINTS[N] = {"right_j0", "right_j1", "right_j2", "right_j3",
                               "right_j4", "right_j5", "right_j6"};

volatile sig_atomic_t stop_requested;

void on_signal(int)
{
    stop_requested = 1;
}

/* What the robot said last, between roscpp's spinner and the loop. */
struct RobotIn {
    std::mutex mu;
    bool have_q = false, refused = false, have_tau = false;
    double q[N] = {}, dq[N] = {}, tau[N] = {};
    int64_t q_mono_ns = 0, q_unix_ns = 0;
    /* the newest valid end-effector pose and when it came (have_ee: one has;
     * until then the driver reports no state: no made-up pose reaches pacd) */
    double ee[7] = {0, 0, 0, 1, 0, 0, 0};
    bool have_ee = false;
    int64_t ee_mono_ns = 0;
    uint64_t joint_states = 0, states_refused = 0;
    std::string why; /* the newest refusal */
};

driver_bridge_t *g_log; /* for the callbacks' log lines */

void refuse(RobotIn &in, const std::string &why)
{
    /* called with in.mu held */
    in.states_refused++;
    bool changed = why != in.why;
    in.why = why;
    if (changed || in.states_refused <= 5 || in.states_refused % 100 == 0)
        driver_bridge_log(g_log, 4, "robot state refused (%llu so far): %s",
                          (unsigned long long)in.states_refused, why.c_str());
}

void on_joint_state(RobotIn *in, const sensor_msgs::JointState::ConstPtr &m)
{
    int idx[N];
    int found = 0;
    char why[256] = "";
    const size_t n = m->name.size();
    for (int j = 0; j < N; j++)
        idx[j] = -1;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < N; j++)
            if (m->name[i] == JOINTS[j]) {
                if (idx[j] >= 0 && !why[0])
                    snprintf(why, sizeof why, "joint %s named twice", JOINTS[j]);
                idx[j] = (int)i;
                found++;
            }
    if (found == 0)
        return; /* another part's joints (head, gripper): not ours */
    for (int j = 0; j < N && !why[0]; j++)
        if (idx[j] < 0)
            snprintf(why, sizeof why, "joint state without %s (%zu names): not a Sawyer arm",
                     JOINTS[j], n);
    if (!why[0] && (m->position.size() != n || m->velocity.size() != n ||
                    (!m->effort.empty() && m->effort.size() != n)))
        snprintf(why, sizeof why,
                 "joint state arrays of %zu positions, %zu velocities, %zu efforts for %zu names",
                 m->position.size(), m->velocity.size(), m->effort.size(), n);
    double q[N], dq[N], tau[N];
    for (int j = 0; j < N && !why[0]; j++) {
        q[j] = m->position[idx[j]];
        dq[j] = m->velocity[idx[j]];
        tau[j] = m->effort.empty() ? 0 : m->effort[idx[j]];
        if (!std::isfinite(q[j]) || !std::isfinite(dq[j]) || !std::isfinite(tau[j]))
            snprintf(why, sizeof why, "non-finite %s: position %g, velocity %g, effort %g",
                     JOINTS[j], q[j], dq[j], tau[j]);
    }
    std::lock_guard<std::mutex> lock(in->mu);
    if (why[0]) {
        in->refused = true;
        refuse(*in, why);
        return;
    }
    memcpy(in->q, q, sizeof q);
    memcpy(in->dq, dq, sizeof dq);
    memcpy(in->tau, tau, sizeof tau);
    in->have_tau = !m->effort.empty();
    in->q_mono_ns = rt_clock_mono_ns();
    in->q_unix_ns = m->header.stamp.isZero() ? rt_clock_unix_ns()
                                             : (int64_t)m->header.stamp.toNSec();
    in->have_q = true;
    in->refused = false;
    in->joint_states++;
}

void on_endpoint(RobotIn *in, const intera_core_msgs::EndpointState::ConstPtr &m)
{
    const geometry_msgs::Pose &p = m->pose;
    double e[7] = {p.position.x, p.position.y, p.position.z, p.orientation.w,
                   p.orientation.x, p.orientation.y, p.orientation.z};
    std::lock_guard<std::mutex> lock(in->mu);
    if (!m->valid) {
        refuse(*in, "endpoint state marked not valid (the previous pose kept)");
        return;
    }
    for (double v : e)
        if (!std::isfinite(v)) {
            refuse(*in, "non-finite endpoint pose (the previous pose kept)");
            return;
        }
    memcpy(in->ee, e, sizeof e);
    in->have_ee = true;
    in->ee_mono_ns = rt_clock_mono_ns();
}

void usage()
{
    fprintf(stderr, "usage: pacd-sawyer-driver --bind ENDPOINT [--state-rate-hz 100..1000] "
                    "[--command-timeout-s 0.2] [--robot-state-max-age-ms 100] [--wait-s 10]\n"
                    "       [--curve-secret-key FILE] [--curve-allow DIR] [--insecure]\n"
                    "  ROS_MASTER_URI: the robot's ROS master\n");
}

} // namespace

int main(int argc, char **argv)
{
    const char *bind = nullptr, *curve_key = nullptr, *curve_allow = nullptr;
    int insecure = 0;
    double state_rate_hz = 100, timeout_s = 0.2, wait_s = 10, max_age_ms = 100;
    /* ROS remappings (name:=value) are roscpp's; the rest are ours */
    ros::init(argc, argv, "pacd_sawyer_driver",
              ros::init_options::NoSigintHandler | ros::init_options::AnonymousName);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (!strcmp(a, "--insecure")) {
            insecure = 1;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--bind"))
            bind = v;
        else if (!strcmp(a, "--state-rate-hz"))
            state_rate_hz = atof(v);
        else if (!strcmp(a, "--command-timeout-s"))
            timeout_s = atof(v);
        else if (!strcmp(a, "--robot-state-max-age-ms"))
            max_age_ms = atof(v);
        else if (!strcmp(a, "--wait-s"))
            wait_s = atof(v);
        else if (!strcmp(a, "--curve-secret-key"))
            curve_key = v;
        else if (!strcmp(a, "--curve-allow"))
            curve_allow = v;
        else {
            usage();
            return 2;
        }
    }
    if (!bind || !(state_rate_hz >= 100 && state_rate_hz <= 1000) ||
        !(timeout_s >= 0.02 && timeout_s <= 5) || !(wait_s > 0 && wait_s <= 600) ||
        !(max_age_ms >= 10 && max_age_ms <= 10000)) {
        usage();
        return 2;
    }
    const hal_robot_t *robot = hal_robot_find("sawyer");
    driver_bridge_t bridge = {};
    bridge.robot = robot;
    bridge.name = "pacd-sawyer-driver";
    bridge.state_rate_hz = state_rate_hz;
    bridge.curve_secret_key = curve_key;
    bridge.curve_allow = curve_allow;
    bridge.insecure = insecure;
    g_log = &bridge;

    struct sigaction sa = {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    if (!ros::master::check()) {
        driver_bridge_log(&bridge, 3, "no ROS master at %s (ROS_MASTER_URI)",
                          ros::master::getURI().c_str());
        return 1;
    }
    RobotIn in;
    ros::NodeHandle nh;
    ros::Publisher cmd_pub =
        nh.advertise<intera_core_msgs::JointCommand>("/robot/limb/right/joint_command", 10);
    ros::Publisher timeout_pub =
        nh.advertise<std_msgs::Float64>("/robot/limb/right/joint_command_timeout", 1, true);
    ros::Publisher enable_pub = nh.advertise<std_msgs::Bool>("/robot/set_super_enable", 1, true);
    boost::function<void(const sensor_msgs::JointState::ConstPtr &)> js_cb =
        [&in](const sensor_msgs::JointState::ConstPtr &m) { on_joint_state(&in, m); };
    boost::function<void(const intera_core_msgs::EndpointState::ConstPtr &)> ee_cb =
        [&in](const intera_core_msgs::EndpointState::ConstPtr &m) { on_endpoint(&in, m); };
    ros::Subscriber js_sub = nh.subscribe<sensor_msgs::JointState>(
        "/robot/joint_states", 10, js_cb, ros::VoidConstPtr(), ros::TransportHints().tcpNoDelay());
    ros::Subscriber ee_sub = nh.subscribe<intera_core_msgs::EndpointState>(
        "/robot/limb/right/endpoint_state", 10, ee_cb, ros::VoidConstPtr(),
        ros::TransportHints().tcpNoDelay());
    ros::AsyncSpinner spinner(1);
    spinner.start();

    std_msgs::Float64 timeout_msg;
    timeout_msg.data = timeout_s;
    timeout_pub.publish(timeout_msg);
    std_msgs::Bool enable;
    enable.data = true;
    enable_pub.publish(enable);
    driver_bridge_log(&bridge, 5, "ROS master %s: enabling the robot, joint_command_timeout %g s; "
                                  "waiting for /robot/joint_states and /robot/limb/right/endpoint_state",
                      ros::master::getURI().c_str(), timeout_s);

    /* the core starts at rest at the arm's measured position */
    double q0[N];
    const int64_t wait_end = rt_clock_mono_ns() + (int64_t)(wait_s * 1e9);
    for (;;) {
        {
            std::lock_guard<std::mutex> lock(in.mu);
            if (in.have_q && !in.refused && in.have_ee) {
                memcpy(q0, in.q, sizeof q0);
                break;
            }
            if (stop_requested || rt_clock_mono_ns() > wait_end || !ros::ok()) {
                if (!in.have_q || in.refused)
                    driver_bridge_log(&bridge, 3, "no valid joint state of a Sawyer arm on "
                                                  "/robot/joint_states within %g s", wait_s);
                else
                    driver_bridge_log(&bridge, 3, "no valid end-effector pose on "
                                                  "/robot/limb/right/endpoint_state within %g s",
                                      wait_s);
                return 1;
            }
        }
        rt_clock_sleep_ns(TICK_NS);
    }
    driver_core_t core;
    char err[512] = "";
    if (driver_core_init(&core, robot, q0, nullptr, err, sizeof err) != 0) {
        driver_bridge_log(&bridge, 3, "%s", err);
        return 1;
    }
    if (driver_bridge_open(&bridge, bind, err, sizeof err) != 0) {
        driver_bridge_log(&bridge, 3, "%s", err);
        return 1;
    }
    driver_bridge_log(&bridge, 5, "sawyer on %s: bridge protocol %u, state at %g Hz, "
                                  "commands at 100 Hz (VELOCITY_MODE), ready",
                      bind, bridge.protocol_version, state_rate_hz);

    intera_core_msgs::JointCommand cmd;
    cmd.mode = intera_core_msgs::JointCommand::VELOCITY_MODE;
    for (int j = 0; j < N; j++)
        cmd.names.push_back(JOINTS[j]);
    cmd.velocity.assign(N, 0.0);

    driver_output_t out = {};
    driver_bridge_extra_t extra = {};
    uint64_t commands = 0, holds_on_robot = 0;
    int zeros_left = 0; /* zero commands still to send after the arm came to rest */
    bool holding = false, leaving = false;
    const int64_t max_age_ns = llround(max_age_ms * 1e6);
    int64_t leave_by = 0;
    const int64_t state_every = llround(1e9 / state_rate_hz);
    /* the commands' stamps: the core's own time (start + ticks * 1 ms), so
     * their velocity steps can be judged against its limits */
    const int64_t stamp0_ns = rt_clock_unix_ns();
    int64_t next = rt_clock_mono_ns() + TICK_NS, next_state = next, next_cmd = next;
    while (ros::ok()) {
        if (rt_clock_sleep_until_intr(next) == -EINTR && !stop_requested)
            continue;
        int64_t now = rt_clock_mono_ns();
        if (stop_requested && !leaving) {
            /* forget the target: the core decelerates to rest */
            leaving = true;
            leave_by = now + 5000000000LL;
            driver_core_new_session(&core, 0);
            driver_bridge_log(&bridge, 5, "asked to stop: bringing the arm to rest");
        }
        if (now - next >= TICK_NS) {
            extra.overruns++;
            next = now;
        }
        driver_bridge_arm_t arm = {};
        double q[N], dq[N], tau[N];
        std::string why;
        {
            std::lock_guard<std::mutex> lock(in.mu);
            memcpy(q, in.q, sizeof q);
            memcpy(dq, in.dq, sizeof dq);
            memcpy(tau, in.tau, sizeof tau);
            memcpy(arm.ee_pose, in.ee, sizeof arm.ee_pose);
            arm.tau = in.have_tau ? tau : nullptr;
            arm.time_mono_ns = in.q_mono_ns;
            arm.time_unix_ns = in.q_unix_ns;
            extra.robot_states_refused = in.states_refused;
            if (in.refused)
                why = in.why;
            else if (now - in.q_mono_ns > max_age_ns)
                why = "no joint state for more than " + std::to_string((int)max_age_ms) + " ms";
            else if (now - in.ee_mono_ns > max_age_ns)
                why = "no valid endpoint state for more than " + std::to_string((int)max_age_ms) +
                      " ms";
        }
        arm.n = N;
        arm.q = q;
        arm.dq = dq;
        if (!why.empty() && !holding) {
            holding = true;
            holds_on_robot++;
            /* forget the target: the core decelerates to rest */
            driver_core_new_session(&core, 0);
            driver_bridge_log(&bridge, 3, "holding the arm: %s", why.c_str());
        } else if (why.empty() && holding) {
            holding = false;
            driver_bridge_log(&bridge, 5, "valid joint states again: taking targets");
        }
        for (int k = 0; k < 64; k++) {
            uint8_t id[DRIVER_BRIDGE_MAX_ID];
            size_t id_len;
            Pacd__V1__BridgeMessage *m;
            if (!driver_bridge_recv(&bridge, id, &id_len, &m))
                break;
            if (!m)
                continue;
            driver_target_t dt;
            if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_HELLO)
                driver_bridge_hello(&bridge, &core, id, id_len, m->hello);
            else if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_TARGET &&
                     driver_bridge_target(&bridge, id, id_len, m->target, now, &dt) == 0 &&
                     !holding && !leaving)
                driver_core_target(&core, &dt);
            pacd__v1__bridge_message__free_unpacked(m, nullptr);
        }
        driver_core_step(&core, now, &out);
        bool active = out.mode == DRIVER_TRACKING || out.moving;
        if (active)
            zeros_left = 10;
        if (now >= next_cmd) {
            if (active || zeros_left > 0) {
                if (!active)
                    zeros_left--;
                for (int j = 0; j < N; j++)
                    cmd.velocity[j] = active ? out.dq[j] : 0.0;
                cmd.header.stamp.fromNSec(
                    (uint64_t)(stamp0_ns + (int64_t)driver_core_counters(&core).ticks * TICK_NS));
                cmd_pub.publish(cmd);
                commands++;
            }
            next_cmd += COMMAND_NS;
            if (next_cmd < now)
                next_cmd = now + COMMAND_NS;
        }
        if (now >= next_state) {
            if (!holding)
                driver_bridge_send_state(&bridge, &arm, &out, &core, &extra);
            next_state += state_every;
            if (next_state < now)
                next_state = now + state_every;
        }
        if (leaving && (!out.moving || now > leave_by))
            break;
        next += TICK_NS;
    }
    /* the arm must not keep a velocity (Intera's timeout stops it too) */
    cmd.velocity.assign(N, 0.0);
    cmd.header.stamp.fromNSec(
        (uint64_t)(stamp0_ns + (int64_t)driver_core_counters(&core).ticks * TICK_NS));
    cmd_pub.publish(cmd);
    commands++;
    ros::WallDuration(0.05).sleep(); /* for roscpp to send it */
    driver_core_counters_t c = driver_core_counters(&core);
    driver_bridge_log(&bridge, 5, "stopping: %llu ticks, %llu targets, %llu stale stops, "
                                  "%llu holds, %llu hellos, %llu commands, %llu robot states "
                                  "refused, %llu holds on robot input",
                      (unsigned long long)c.ticks, (unsigned long long)c.targets_received,
                      (unsigned long long)c.stale_stops, (unsigned long long)c.holds,
                      (unsigned long long)bridge.hellos, (unsigned long long)commands,
                      (unsigned long long)extra.robot_states_refused,
                      (unsigned long long)holds_on_robot);
    spinner.stop();
    driver_bridge_close(&bridge);
    ros::shutdown();
    return 0;
}
