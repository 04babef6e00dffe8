// Test double of libfranka 0.9.x's franka/robot_state.h: the fields
// pacd-franka-driver reads.
#pragma once

#include <array>

#include <franka/duration.h>

namespace franka {

enum class RobotMode {
  kOther,
  kIdle,
  kMove,
  kGuiding,
  kReflex,
  kUserStopped,
  kAutomaticErrorRecovery
};

struct RobotState {
  std::array<double, 16> O_T_EE{};  // end effector in the base frame, column-major 4x4
  std::array<double, 7> q{};        // rad
  std::array<double, 7> dq{};       // rad/s
  std::array<double, 7> tau_J{};    // N m
  RobotMode robot_mode = RobotMode::kUserStopped;
  Duration time{};
};

}  // namespace franka
