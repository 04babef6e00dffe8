// A test double of libfranka 0.9.x (README.md beside this file): the calls
// pacd-franka-driver makes, over a simulated Panda. Not libfranka: no
// network, no robot, no rate limiter; it proves the driver's logic against
// the API's shape and semantics as documented, nothing more.
//
// Robot::control runs the callback once per simulated millisecond, paced to
// the wall clock (absolute CLOCK_MONOTONIC deadlines, no catch-up), with
// Duration 0 on the first call and 1 ms after, integrates the commanded
// joint velocities into the RobotState (q, dq; O_T_EE from pacd's Panda
// kinematics; tau_J 0) and ends when the callback returns MotionFinished.
// Environment:
//   FAKE_FRANKA_TRACE=PATH   one line per callback: "t_ms dq1 .. dq7"
//   FAKE_FRANKA_INJECT=PATH  when this file appears (checked every 10 calls)
//                            it is removed and control() throws the
//                            ControlException of a communication-constraints
//                            reflex; the robot stays in reflex mode until
//                            automaticErrorRecovery().
// Every call is logged on stderr as "fake-libfranka: ...".
#include <franka/exception.h>
#include <franka/gripper.h>
#include <franka/robot.h>

#include <cerrno>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

extern "C" {
#include "hal_robot.h"
}

namespace {

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

void say(const char* fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "fake-libfranka: %s\n", line);
  fflush(stderr);
}

int64_t mono_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void sleep_until(int64_t t) {
  struct timespec ts;
  ts.tv_sec = t / 1000000000LL;
  ts.tv_nsec = t % 1000000000LL;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// The end effector of q as libfranka gives it: a column-major 4x4 transform.
void end_effector(const std::array<double, 7>& q, std::array<double, 16>& t) {
  double pose[7];
  hal_robot_fk(hal_robot_find("panda"), q.data(), pose);
  const double w = pose[3], x = pose[4], y = pose[5], z = pose[6];
  const double r[3][3] = {{1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
                          {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
                          {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)}};
  t.fill(0);
  for (int col = 0; col < 3; col++)
    for (int row = 0; row < 3; row++)
      t[col * 4 + row] = r[row][col];
  t[12] = pose[0];
  t[13] = pose[1];
  t[14] = pose[2];
  t[15] = 1;
}

bool inject_requested(const char* path) {
  return path && unlink(path) == 0;
}

}  // namespace

namespace franka {

Robot::Robot(const std::string& franka_address, RealtimeConfig realtime_config, size_t log_size) {
  const hal_robot_t* panda = hal_robot_find("panda");
  for (int i = 0; i < 7; i++)
    state_.q[i] = panda->q_home[i];
  end_effector(state_.q, state_.O_T_EE);
  state_.robot_mode = RobotMode::kIdle;
  say("Robot(%s, realtime %s, log_size %zu)", franka_address.c_str(),
      realtime_config == RealtimeConfig::kEnforce ? "enforce" : "ignore", log_size);
}

Robot::~Robot() noexcept { say("~Robot"); }

void Robot::control(
    std::function<JointVelocities(const RobotState&, franka::Duration)> motion_generator_callback,
    ControllerMode controller_mode, bool limit_rate, double cutoff_frequency) {
  say("control(JointVelocities, %s, limit_rate=%d, cutoff_frequency=%g)",
      controller_mode == ControllerMode::kJointImpedance ? "joint impedance" : "cartesian impedance",
      limit_rate ? 1 : 0, cutoff_frequency);
  if (state_.robot_mode == RobotMode::kReflex)
    throw ControlException("libfranka: Move command rejected: command not possible in the current mode (\"Reflex\")!");
  const char* trace_path = getenv("FAKE_FRANKA_TRACE");
  const char* inject_path = getenv("FAKE_FRANKA_INJECT");
  FILE* trace = trace_path ? fopen(trace_path, "a") : nullptr;
  state_.robot_mode = RobotMode::kMove;
  Duration step(0);
  int64_t next = mono_ns();
  for (uint64_t calls = 0;; calls++) {
    sleep_until(next);
    if (calls % 10 == 9 && inject_requested(inject_path)) {
      state_.dq.fill(0);
      state_.robot_mode = RobotMode::kReflex;
      if (trace)
        fclose(trace);
      say("injected: communication_constraints_violation");
      throw ControlException(
          "libfranka: Move command aborted: motion aborted by reflex! "
          "[\"communication_constraints_violation\"]");
    }
    JointVelocities cmd = motion_generator_callback(state_, step);
    for (double v : cmd.dq)
      if (!std::isfinite(v)) {
        if (trace)
          fclose(trace);
        throw std::invalid_argument("joint velocity command is NaN or infinity");
      }
    state_.time = Duration(state_.time.toMSec() + step.toMSec());
    if (trace) {
      fprintf(trace, "%llu", static_cast<unsigned long long>(state_.time.toMSec()));
      for (double v : cmd.dq)
        fprintf(trace, " %.17g", v);
      fputc('\n', trace);
    }
    for (int i = 0; i < 7; i++) {
      state_.q[i] += cmd.dq[i] * 1e-3;
      state_.dq[i] = cmd.dq[i];
    }
    end_effector(state_.q, state_.O_T_EE);
    if (cmd.motion_finished) {
      state_.robot_mode = RobotMode::kIdle;
      if (trace)
        fclose(trace);
      say("control: motion finished at t=%llu ms",
          static_cast<unsigned long long>(state_.time.toMSec()));
      return;
    }
    step = Duration(1);
    next += 1000000;
    int64_t now = mono_ns();
    if (now > next + 1000000)
      next = now;  // late: no catch-up, like the robot's clock
  }
}

RobotState Robot::readOnce() {
  sleep_until(mono_ns() + 1000000);  // the next state packet
  return state_;
}

void Robot::automaticErrorRecovery() {
  say("automaticErrorRecovery (robot mode was %s)",
      state_.robot_mode == RobotMode::kReflex ? "reflex" : "not reflex");
  state_.robot_mode = RobotMode::kIdle;
}

Gripper::Gripper(const std::string& franka_address) {
  state_.max_width = 0.08;
  state_.width = 0.08;
  say("Gripper(%s)", franka_address.c_str());
}

Gripper::~Gripper() noexcept { say("~Gripper"); }

bool Gripper::homing() const {
  std::lock_guard<std::mutex> lock(mutex_);
  say("gripper homing()");
  state_.width = state_.max_width;
  return true;
}

bool Gripper::grasp(double width, double speed, double force, double epsilon_inner,
                    double epsilon_outer) const {
  usleep(20000);  // the fingers take time
  std::lock_guard<std::mutex> lock(mutex_);
  say("gripper grasp(width=%g, speed=%g, force=%g, epsilon_inner=%g, epsilon_outer=%g)", width,
      speed, force, epsilon_inner, epsilon_outer);
  const double object = 0.03;  // an object 30 mm wide between the fingers
  state_.width = object;
  state_.is_grasped = object >= width - epsilon_inner && object <= width + epsilon_outer;
  return state_.is_grasped;
}

bool Gripper::move(double width, double speed) const {
  usleep(20000);
  std::lock_guard<std::mutex> lock(mutex_);
  say("gripper move(width=%g, speed=%g)", width, speed);
  state_.width = width;
  state_.is_grasped = false;
  return true;
}

bool Gripper::stop() const {
  std::lock_guard<std::mutex> lock(mutex_);
  say("gripper stop()");
  return true;
}

GripperState Gripper::readOnce() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

}  // namespace franka
