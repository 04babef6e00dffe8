/* pacd-franka-driver — the robot-side driver of the bridge (docs/bridge.md)
 * for a Franka Emika Panda: the driver core (driver_core.h) inside
 * libfranka 0.9.x's 1 kHz joint-velocity control loop.
 *
 *   pacd-franka-driver --robot-ip HOST --bind ENDPOINT [--gripper] [--curve-secret-key FILE] [--insecure]
 *                      [--state-rate-hz 250] [--auto-recover]
 *                      [--realtime enforce|ignore] [--grasp-force 20]
 *                      [--speed-scale 1]
 *
 * --speed-scale F (0.05..1): the core's velocity, acceleration and jerk
 * limits are the Panda's times F (for the first motions at reduced speed:
 * faster targets are clamped, counted in velocity_clamps).
 * Threads:
 *   - main (bridge I/O): binds a ZeroMQ ROUTER, answers handshakes, hands
 *     targets and new sessions to the control thread through a lock-free
 *     single-producer single-consumer ring (Inbox), and sends the peer a
 *     DriverState every 1/state-rate-hz s from the control thread's
 *     published snapshot (SeqBox). Logs.
 *   - control: franka::Robot::control with a JointVelocities callback
 *     (joint impedance, rate limiting on, libfranka's default cutoff
 *     frequency). The callback advances the robot's clock by the callback's
 *     franka::Duration, takes what the ring holds, calls driver_core_step()
 *     and returns the step's joint velocities: no locks, no allocation, no
 *     system calls. Targets are stamped with that robot clock when they are
 *     received (the control thread publishes it), so staleness is measured
 *     on one clock. On a franka::Exception (a reflex such as
 *     communication_constraints_violation, a lost network) the driver
 *     reports mode ERROR with the exception's text in DriverState.errors,
 *     refuses targets (counted) and holds: the arm is stopped by the robot;
 *     nothing is commanded. With --auto-recover it then calls
 *     Robot::automaticErrorRecovery() (every 1 s until it succeeds), puts
 *     the core at rest at the measured joint positions and starts the
 *     control loop again (a fresh target moves the arm); without it, it
 *     stays in ERROR until it is restarted (after the operator has checked
 *     the arm), reading the state for the bridge.
 *   - gripper (--gripper): franka::Gripper; the callback publishes the
 *     core's gripper value (-1..1, 0 unless tracking a fresh target) in an
 *     atomic; this thread opens (move to max_width) when it rises above
 *     0.5 and grasps (width 0, any object up to max_width) when it falls
 *     below -0.5, once per change, and reads the fingers' width between
 *     commands. Never from the 1 kHz callback (gripper commands block for
 *     seconds).
 * SIGTERM / SIGINT: the arm decelerates to rest (a hold), the loop ends with
 * MotionFinished, exit 0. */
extern "C" {
#include "driver_bridge.h"
#include "driver_core.h"
#include "hal_log.h"
#include "hal_robot.h"
#include "rt_clock.h"
#include <zmq.h>
}

#include <franka/control_types.h>
#include <franka/duration.h>
#include <franka/exception.h>
#include <franka/gripper.h>
#include <franka/robot.h>
#include <franka/robot_state.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>

namespace {

constexpr int kJoints = 7;

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) { g_stop.store(true); }

/* "<prio>pacd-franka-driver: ..." on stderr (hal_log.h); not from the 1 kHz callback */
#define log_line(prio, ...) hal_log((prio), "pacd-franka-driver", __VA_ARGS__)

/* A message from the I/O thread to the control thread. */
struct InboxEntry {
  enum Kind { kTarget, kSession } kind;
  driver_target_t target;  // kTarget
  double policy_period_s;  // kSession
};

/* Single producer (I/O thread), single consumer (control thread), fixed
 * capacity, lock-free: push and pop are a few atomic loads and stores. */
class Inbox {
 public:
  bool push(const InboxEntry& e) {
    const uint32_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == kSize)
      return false;
    slots_[head % kSize] = e;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }
  bool pop(InboxEntry& e) {
    const uint32_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire))
      return false;
    e = slots_[tail % kSize];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

 private:
  static constexpr uint32_t kSize = 64;
  InboxEntry slots_[kSize];
  std::atomic<uint32_t> head_{0}, tail_{0};
};

/* One writer, many readers, lock-free: a seqlock over atomic 64-bit words
 * (the scheme of rt/rt_seqbox.h, in C++ atomics): the writer marks the
 * sequence odd, stores the words with release, marks it even with release;
 * a reader retries while it is odd or moved during its copy. */
template <typename T>
class SeqBox {
  static_assert(std::is_trivially_copyable<T>::value, "a plain struct");
  static constexpr size_t kWords = (sizeof(T) + 7) / 8;

 public:
  void publish(const T& v) {
    uint64_t w[kWords] = {};
    memcpy(w, &v, sizeof v);
    const uint64_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);
    for (size_t i = 0; i < kWords; i++)
      words_[i].store(w[i], std::memory_order_release);
    seq_.store(s + 2, std::memory_order_release);
  }
  /* false: nothing published yet, or the writer kept writing. */
  bool read(T& out) const {
    for (int attempt = 0; attempt < 1000; attempt++) {
      const uint64_t s1 = seq_.load(std::memory_order_acquire);
      if (s1 == 0)
        return false;
      if (s1 & 1)
        continue;
      uint64_t w[kWords];
      for (size_t i = 0; i < kWords; i++)
        w[i] = words_[i].load(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == s1) {
        memcpy(&out, w, sizeof out);
        return true;
      }
    }
    return false;
  }

 private:
  std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> words_[kWords] = {};
};

/* What the control thread publishes for the bridge. */
struct Snapshot {
  int64_t robot_ns;  // the robot's clock (sum of the callbacks' durations)
  double q[kJoints], dq[kJoints], tau[kJoints];
  double o_t_ee[16];
  int mode;  // driver_mode_t, or 5 (ERROR)
  int moving;
  uint64_t target_seq;
  driver_core_counters_t counters;
  uint64_t overruns;
  uint64_t stops_completed;  // stale stops that ended at rest
  double last_stop_used;     // of its stopping distance, the farthest joint
  int64_t last_stop_ms;
};

constexpr int kModeError = 5;  // pacd.v1.DriverState.ERROR

struct Driver {
  const hal_robot_t* robot = nullptr;
  std::string robot_ip, bind, curve_secret_key;
  bool insecure = false;
  bool gripper_on = false, auto_recover = false;
  franka::RealtimeConfig realtime = franka::RealtimeConfig::kEnforce;
  double state_rate_hz = 250, grasp_force = 20, speed_scale = 1;

  Inbox inbox;
  SeqBox<Snapshot> snapshot;
  std::atomic<int64_t> robot_now_ns{0};     // the control thread's clock, for stamping targets
  std::atomic<uint64_t> inbox_full{0};      // targets the ring had no room for
  std::atomic<uint64_t> refused_in_error{0};
  std::atomic<double> gripper_value{0};     // the core's gripper output
  std::atomic<double> gripper_width{0};
  std::atomic<bool> gripper_grasped{false};
  std::atomic<uint64_t> gripper_commands{0}, gripper_failures{0};
  std::atomic<bool> in_error{false};
  std::atomic<uint64_t> exceptions{0}, recoveries{0};
  std::mutex error_mutex;  // not for the callback: the control thread outside it, and I/O
  std::string error_text;

  // the control thread's own (the callback's) state
  driver_core_t core{};
  driver_output_t out{};
  Snapshot snap{};
  bool stopping = false;
  int64_t stop_start_ns = 0;
  double stop_q0[kJoints] = {}, stop_allowed[kJoints] = {};
  bool hold_sent = false;

  // the I/O thread's: the socket, the peer and the protocol's counters
  driver_bridge_t bridge{};
};

void set_error(Driver& d, const std::string& text) {
  {
    std::lock_guard<std::mutex> lock(d.error_mutex);
    d.error_text = text;
  }
  d.in_error.store(true);
}

void clear_error(Driver& d) {
  std::lock_guard<std::mutex> lock(d.error_mutex);
  d.error_text.clear();
  d.in_error.store(false);
}

/* ---- the control thread ---- */

void fill_from_state(Snapshot& s, const franka::RobotState& rs) {
  for (int i = 0; i < kJoints; i++) {
    s.q[i] = rs.q[i];
    s.dq[i] = rs.dq[i];
    s.tau[i] = rs.tau_J[i];
  }
  for (int i = 0; i < 16; i++)
    s.o_t_ee[i] = rs.O_T_EE[i];
}

/* The core at rest at q; its counters kept across the restart. RT-safe. */
void core_restart(Driver& d, const double* q) {
  driver_core_counters_t kept = driver_core_counters(&d.core);
  char err[256];
  driver_core_init(&d.core, d.robot, q, nullptr, err, sizeof err);
  d.core.counters = kept;
  d.out = driver_output_t{};
  d.out.mode = DRIVER_IDLE;
  d.stopping = false;
}

/* Messages that arrived while no control loop ran: the newest session's
 * period is taken; targets are refused (they are older than the loop). */
void drain_inbox(Driver& d) {
  InboxEntry e;
  while (d.inbox.pop(e)) {
    if (e.kind == InboxEntry::kSession)
      driver_core_new_session(&d.core, e.policy_period_s);
    else
      d.refused_in_error.fetch_add(1);
  }
}

/* The 1 kHz callback's work: RT-safe (no locks, allocation or syscalls). */
franka::JointVelocities control_tick(Driver& d, const franka::RobotState& rs,
                                     franka::Duration period) {
  const uint64_t ms = period.toMSec();
  if (ms > 1)
    d.snap.overruns += ms - 1;  // packets lost: whole periods late
  d.snap.robot_ns += static_cast<int64_t>(ms) * 1000000LL;
  const int64_t now = d.snap.robot_ns;
  d.robot_now_ns.store(now, std::memory_order_release);

  InboxEntry e;
  while (d.inbox.pop(e)) {
    if (d.hold_sent)
      continue;  // stopping for good: nothing moves the arm again
    if (e.kind == InboxEntry::kSession)
      driver_core_new_session(&d.core, e.policy_period_s);
    else
      driver_core_target(&d.core, &e.target);
  }
  if (g_stop.load(std::memory_order_relaxed) && !d.hold_sent) {
    driver_target_t hold{};
    hold.seq = d.out.target_seq + 1;
    hold.time_ns = now;
    hold.mode = DRIVER_TARGET_VELOCITY;
    hold.hold = 1;
    hold.n = d.robot->n_joints;
    driver_core_target(&d.core, &hold);
    d.hold_sent = true;
  }

  const driver_output_t prev = d.out;
  driver_core_step(&d.core, now, &d.out);

  // a stale stop: how far it went against the distance the limits allow
  if (d.out.mode == DRIVER_STOPPING && !d.stopping) {
    d.stopping = true;
    d.stop_start_ns = now;
    for (int i = 0; i < kJoints; i++) {
      d.stop_q0[i] = prev.q[i];
      d.stop_allowed[i] = driver_stop_distance(prev.dq[i], prev.ddq[i], d.robot->ddq_max[i],
                                               d.robot->dddq_max[i]) +
                          2e-3 * std::fabs(prev.dq[i]) + 1e-9;
    }
  } else if (d.stopping && d.out.mode != DRIVER_STOPPING) {
    d.stopping = false;
    if (d.out.mode == DRIVER_IDLE && !d.out.moving) {
      double worst = 0;
      for (int i = 0; i < kJoints; i++)
        worst = std::fmax(worst, std::fabs(d.out.q[i] - d.stop_q0[i]) / d.stop_allowed[i]);
      d.snap.last_stop_used = worst;
      d.snap.last_stop_ms = (now - d.stop_start_ns) / 1000000;
      d.snap.stops_completed++;
    }
  }

  d.gripper_value.store(d.out.gripper, std::memory_order_relaxed);
  fill_from_state(d.snap, rs);
  d.snap.mode = d.out.mode;
  d.snap.moving = d.out.moving;
  d.snap.target_seq = d.out.target_seq;
  d.snap.counters = driver_core_counters(&d.core);
  d.snapshot.publish(d.snap);

  std::array<double, 7> dq;
  for (int i = 0; i < kJoints; i++)
    dq[i] = d.out.dq[i];
  franka::JointVelocities cmd(dq);
  if (d.hold_sent && !d.out.moving)
    return franka::MotionFinished(cmd);  // at rest: the loop may end
  return cmd;
}

/* Publish a state read outside the control loop (mode ERROR or starting). */
void publish_read(Driver& d, const franka::RobotState& rs, int mode) {
  fill_from_state(d.snap, rs);
  d.snap.mode = mode;
  d.snap.moving = 0;
  d.snap.counters = driver_core_counters(&d.core);
  d.snapshot.publish(d.snap);
}

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

void control_thread(Driver& d, franka::Robot& robot) {
  bool need_restart = true;
  while (!g_stop.load()) {
    if (d.in_error.load()) {
      // hold: nothing commanded; the robot stopped itself. Keep the state
      // flowing for the bridge, recover only when asked to.
      try {
        publish_read(d, robot.readOnce(), kModeError);
      } catch (const franka::Exception& ex) {
        sleep_s(0.1);
      }
      drain_inbox(d);
      if (!d.auto_recover) {
        sleep_s(0.01);
        continue;
      }
      sleep_s(0.5);  // the error stays visible to pacd for a while
      if (g_stop.load())
        break;
      try {
        log_line(5, "automatic error recovery");
        robot.automaticErrorRecovery();
      } catch (const franka::Exception& ex) {
        log_line(3, "automatic error recovery failed: %s (again in 1 s)", ex.what());
        sleep_s(1.0);
        continue;
      }
      d.recoveries.fetch_add(1);
      clear_error(d);
      need_restart = true;
      log_line(5, "recovered: the arm rests until a fresh target");
    }
    try {
      if (need_restart) {
        franka::RobotState rs = robot.readOnce();
        double q[kJoints];
        for (int i = 0; i < kJoints; i++)
          q[i] = rs.q[i];
        drain_inbox(d);
        core_restart(d, q);
        publish_read(d, rs, DRIVER_IDLE);
        need_restart = false;
      }
      // made once per loop, outside the callback (calling it does not allocate)
      std::function<franka::JointVelocities(const franka::RobotState&, franka::Duration)> tick =
          [&d](const franka::RobotState& rs, franka::Duration period) {
            return control_tick(d, rs, period);
          };
      robot.control(tick, franka::ControllerMode::kJointImpedance, /* limit_rate */ true,
                    franka::kDefaultCutoffFrequency);
      if (g_stop.load())
        break;
      need_restart = true;  // the loop ended without a stop request
    } catch (const franka::Exception& ex) {
      d.exceptions.fetch_add(1);
      set_error(d, ex.what());
      log_line(3, "%s: holding (%s)", ex.what(),
               d.auto_recover ? "automatic error recovery on"
                              : "waiting: restart the driver after checking the arm, or run it "
                                "with --auto-recover");
      need_restart = true;
    }
  }
}

/* ---- the gripper thread ---- */

void gripper_thread(Driver& d, franka::Gripper& gripper) {
  int last = 0;  // -1 grasped, 1 opened, 0 nothing asked yet
  double max_width = d.robot->gripper_max;
  try {
    franka::GripperState gs = gripper.readOnce();
    if (gs.max_width > 0)
      max_width = gs.max_width;
    d.gripper_width.store(gs.width);
    d.gripper_grasped.store(gs.is_grasped);
  } catch (const franka::Exception& ex) {
    log_line(3, "gripper: %s", ex.what());
  }
  while (!g_stop.load()) {
    const double g = d.gripper_value.load(std::memory_order_relaxed);
    const int want = g > 0.5 ? 1 : g < -0.5 ? -1 : 0;
    if (want != 0 && want != last) {
      last = want;
      d.gripper_commands.fetch_add(1);
      try {
        bool ok = want > 0 ? gripper.move(max_width, d.robot->gripper_speed)
                           : gripper.grasp(0.0, d.robot->gripper_speed, d.grasp_force, 0.005,
                                           max_width);
        if (!ok && want > 0)
          d.gripper_failures.fetch_add(1);
        log_line(6, "gripper %s: %s", want > 0 ? "open" : "grasp",
                 ok ? "done" : want > 0 ? "failed" : "nothing grasped");
      } catch (const franka::Exception& ex) {
        d.gripper_failures.fetch_add(1);
        log_line(3, "gripper %s: %s", want > 0 ? "open" : "grasp", ex.what());
      }
    }
    try {
      franka::GripperState gs = gripper.readOnce();
      d.gripper_width.store(gs.width);
      d.gripper_grasped.store(gs.is_grasped);
    } catch (const franka::Exception& ex) {
      sleep_s(0.1);
    }
    sleep_s(0.01);
  }
}

/* ---- the bridge I/O thread (main) ---- */

/* A new session, for the control thread to start (driver_bridge_hello_with). */
int push_session(void* ctx, double policy_period_s, char* err, size_t errlen) {
  Driver& d = *static_cast<Driver*>(ctx);
  InboxEntry e{};
  e.kind = InboxEntry::kSession;
  e.policy_period_s = policy_period_s;
  if (d.inbox.push(e))
    return 0;
  snprintf(err, errlen, "the control thread is not taking messages: try again");
  return -1;
}

void take_target(Driver& d, const uint8_t* id, size_t id_len, const Pacd__V1__JointCommand* t) {
  InboxEntry e{};
  e.kind = InboxEntry::kTarget;
  // stamped with the control thread's clock
  if (driver_bridge_target(&d.bridge, id, id_len, t, d.robot_now_ns.load(std::memory_order_acquire),
                           &e.target) != 0)
    return;
  if (d.in_error.load()) {
    d.refused_in_error.fetch_add(1);  // held: nothing moves until recovered
    return;
  }
  if (!d.inbox.push(e))
    d.inbox_full.fetch_add(1);
}

/* O_T_EE (column-major 4x4) -> x y z, qw qx qy qz. */
void pose_from_transform(const double* t, double pose[7]) {
  auto r = [t](int row, int col) { return t[col * 4 + row]; };
  pose[0] = t[12];
  pose[1] = t[13];
  pose[2] = t[14];
  const double tr = r(0, 0) + r(1, 1) + r(2, 2);
  double w, x, y, z;
  if (tr > 0) {
    const double s = std::sqrt(tr + 1.0) * 2;
    w = 0.25 * s;
    x = (r(2, 1) - r(1, 2)) / s;
    y = (r(0, 2) - r(2, 0)) / s;
    z = (r(1, 0) - r(0, 1)) / s;
  } else if (r(0, 0) > r(1, 1) && r(0, 0) > r(2, 2)) {
    const double s = std::sqrt(1.0 + r(0, 0) - r(1, 1) - r(2, 2)) * 2;
    w = (r(2, 1) - r(1, 2)) / s;
    x = 0.25 * s;
    y = (r(0, 1) + r(1, 0)) / s;
    z = (r(0, 2) + r(2, 0)) / s;
  } else if (r(1, 1) > r(2, 2)) {
    const double s = std::sqrt(1.0 + r(1, 1) - r(0, 0) - r(2, 2)) * 2;
    w = (r(0, 2) - r(2, 0)) / s;
    x = (r(0, 1) + r(1, 0)) / s;
    y = 0.25 * s;
    z = (r(1, 2) + r(2, 1)) / s;
  } else {
    const double s = std::sqrt(1.0 + r(2, 2) - r(0, 0) - r(1, 1)) * 2;
    w = (r(1, 0) - r(0, 1)) / s;
    x = (r(0, 2) + r(2, 0)) / s;
    y = (r(1, 2) + r(2, 1)) / s;
    z = 0.25 * s;
  }
  const double norm = std::sqrt(w * w + x * x + y * y + z * z);
  const double sign = w < 0 ? -1 : 1;  // qw >= 0, as the sim gives it
  pose[3] = sign * w / norm;
  pose[4] = sign * x / norm;
  pose[5] = sign * y / norm;
  pose[6] = sign * z / norm;
}

void send_state(Driver& d, const Snapshot& s) {
  if (d.bridge.peer_len == 0)
    return;
  driver_bridge_arm_t arm{};
  arm.n = kJoints;
  arm.q = s.q;
  arm.dq = s.dq;
  arm.tau = s.tau;
  pose_from_transform(s.o_t_ee, arm.ee_pose);
  if (d.robot->has_gripper) {
    arm.gripper_position = d.gripper_width.load();
    arm.grasp = d.gripper_grasped.load();
  }
  arm.time_unix_ns = rt_clock_unix_ns();
  arm.time_mono_ns = rt_clock_mono_ns();
  driver_bridge_extra_t extra{};
  extra.overruns = s.overruns;
  extra.targets_refused = d.refused_in_error.load() + d.inbox_full.load();
  driver_bridge_state_msg_t m;
  driver_bridge_state(&d.bridge, &arm, s.mode == kModeError ? DRIVER_IDLE : s.mode, s.target_seq,
                      &s.counters, &extra, &m);
  std::string error;
  char* errors[1];
  if (d.in_error.load()) {
    std::lock_guard<std::mutex> lock(d.error_mutex);
    error = d.error_text;
  }
  if (!error.empty()) {
    m.state.mode = PACD__V1__DRIVER_STATE__MODE__ERROR;
    errors[0] = const_cast<char*>(error.c_str());
    m.state.n_errors = 1;
    m.state.errors = errors;
  }
  driver_bridge_send(&d.bridge, &m.msg);
}

void usage() {
  fprintf(stderr,
          "usage: pacd-franka-driver --robot-ip HOST --bind ENDPOINT [--gripper] "
          "[--state-rate-hz 100..1000] [--auto-recover] [--realtime enforce|ignore] "
          "[--grasp-force N] [--speed-scale 0.05..1] [--curve-secret-key FILE] [--insecure]\n");
}

}  // namespace

int main(int argc, char** argv) {
  Driver d;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (!strcmp(a, "--gripper")) {
      d.gripper_on = true;
      continue;
    }
    if (!strcmp(a, "--auto-recover")) {
      d.auto_recover = true;
      continue;
    }
    if (!strcmp(a, "--insecure")) {
      d.insecure = true;
      continue;
    }
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v) {
      usage();
      return 2;
    }
    i++;
    if (!strcmp(a, "--robot-ip")) {
      d.robot_ip = v;
    } else if (!strcmp(a, "--bind")) {
      d.bind = v;
    } else if (!strcmp(a, "--curve-secret-key")) {
      d.curve_secret_key = v;
    } else if (!strcmp(a, "--state-rate-hz")) {
      d.state_rate_hz = atof(v);
    } else if (!strcmp(a, "--speed-scale")) {
      d.speed_scale = atof(v);
    } else if (!strcmp(a, "--grasp-force")) {
      d.grasp_force = atof(v);
    } else if (!strcmp(a, "--realtime") && (!strcmp(v, "enforce") || !strcmp(v, "ignore"))) {
      d.realtime = !strcmp(v, "enforce") ? franka::RealtimeConfig::kEnforce
                                         : franka::RealtimeConfig::kIgnore;
    } else {
      usage();
      return 2;
    }
  }
  if (d.robot_ip.empty() || d.bind.empty() ||
      !(d.state_rate_hz >= 100 && d.state_rate_hz <= 1000) ||
      !(d.grasp_force > 0 && d.grasp_force <= 70) ||
      !(d.speed_scale >= 0.05 && d.speed_scale <= 1)) {
    usage();
    return 2;
  }
  // the description (limits, gripper range), its motion limits times
  // --speed-scale; --gripper: drive the Franka Hand
  static hal_robot_t panda;
  const hal_robot_t* described = hal_robot_find("panda");
  if (!described) {
    fprintf(stderr, "pacd-franka-driver: no panda description\n");
    return 2;
  }
  panda = *described;
  for (int i = 0; i < panda.n_joints; i++) {
    panda.dq_max[i] *= d.speed_scale;
    panda.ddq_max[i] *= d.speed_scale;
    panda.dddq_max[i] *= d.speed_scale;
  }
  d.robot = &panda;

  std::unique_ptr<franka::Robot> robot;
  std::unique_ptr<franka::Gripper> gripper;
  try {
    robot.reset(new franka::Robot(d.robot_ip, d.realtime));
    if (d.gripper_on)
      gripper.reset(new franka::Gripper(d.robot_ip));
  } catch (const franka::Exception& ex) {
    fprintf(stderr, "pacd-franka-driver: cannot connect to the robot at %s: %s\n",
            d.robot_ip.c_str(), ex.what());
    return 1;
  }
  char err[512];
  if (driver_core_init(&d.core, d.robot, nullptr, nullptr, err, sizeof err) != 0) {
    fprintf(stderr, "pacd-franka-driver: %s\n", err);
    return 1;
  }

  d.bridge.robot = d.robot;
  d.bridge.name = "pacd-franka-driver";
  d.bridge.state_rate_hz = d.state_rate_hz;
  d.bridge.curve_secret_key = d.curve_secret_key.empty() ? nullptr : d.curve_secret_key.c_str();
  d.bridge.insecure = d.insecure;
  if (driver_bridge_open(&d.bridge, d.bind.c_str(), err, sizeof err) != 0) {
    fprintf(stderr, "pacd-franka-driver: %s\n", err);
    return 1;
  }
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::thread control([&d, &robot] { control_thread(d, *robot); });
  std::thread grip;
  if (gripper)
    grip = std::thread([&d, &gripper] { gripper_thread(d, *gripper); });
  log_line(5, "%s at %s on %s: bridge protocol %u, state at %g Hz, speed scale %g, automatic "
              "error recovery %s, ready",
           d.robot->name, d.robot_ip.c_str(), d.bind.c_str(), d.bridge.protocol_version,
           d.state_rate_hz, d.speed_scale, d.auto_recover ? "on" : "off");

  const int64_t state_every = llround(1e9 / d.state_rate_hz);
  int64_t next_state = rt_clock_mono_ns() + state_every;
  uint64_t stops_logged = 0;
  while (!g_stop.load()) {
    int64_t wait_ns = next_state - rt_clock_mono_ns();
    zmq_pollitem_t item = {d.bridge.sock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&item, 1, wait_ns > 0 ? static_cast<long>((wait_ns + 999999) / 1000000) : 0);
    for (int k = 0; k < 64; k++) {
      uint8_t id[DRIVER_BRIDGE_MAX_ID];
      size_t id_len;
      Pacd__V1__BridgeMessage* m;
      if (!driver_bridge_recv(&d.bridge, id, &id_len, &m))
        break;
      if (!m)
        continue;
      if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_HELLO)
        driver_bridge_hello_with(&d.bridge, push_session, &d, id, id_len, m->hello);
      else if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_TARGET)
        take_target(d, id, id_len, m->target);
      pacd__v1__bridge_message__free_unpacked(m, nullptr);
    }
    const int64_t now = rt_clock_mono_ns();
    if (now >= next_state) {
      Snapshot s;
      if (d.snapshot.read(s)) {
        send_state(d, s);
        if (s.stops_completed != stops_logged) {
          stops_logged = s.stops_completed;
          log_line(5, "at rest after a stale stop: %lld ms, the farthest joint used %.3f of its "
                      "stopping distance",
                   static_cast<long long>(s.last_stop_ms), s.last_stop_used);
        }
      }
      next_state += state_every;
      if (next_state < now)
        next_state = now + state_every;
    }
  }
  control.join();
  if (grip.joinable())
    grip.join();
  Snapshot s{};
  d.snapshot.read(s);
  log_line(5, "stopping: %llu ticks, %llu targets, %llu stale stops, %llu holds, %llu hellos, "
              "%llu old targets, %llu refused, %llu overruns, %llu exceptions, %llu recoveries, "
              "%llu gripper commands",
           static_cast<unsigned long long>(s.counters.ticks),
           static_cast<unsigned long long>(s.counters.targets_received),
           static_cast<unsigned long long>(s.counters.stale_stops),
           static_cast<unsigned long long>(s.counters.holds),
           static_cast<unsigned long long>(d.bridge.hellos),
           static_cast<unsigned long long>(s.counters.targets_old),
           static_cast<unsigned long long>(s.counters.targets_refused +
                                           d.bridge.targets_refused_peer +
                                           d.refused_in_error.load() + d.inbox_full.load()),
           static_cast<unsigned long long>(s.overruns),
           static_cast<unsigned long long>(d.exceptions.load()),
           static_cast<unsigned long long>(d.recoveries.load()),
           static_cast<unsigned long long>(d.gripper_commands.load()));
  driver_bridge_close(&d.bridge);
  return 0;
}
