// Test double of libfranka 0.9.x's franka/control_types.h: the joint-velocity
// command, the controller and real-time choices.
#pragma once

#include <array>

namespace franka {

enum class ControllerMode { kJointImpedance, kCartesianImpedance };

enum class RealtimeConfig { kEnforce, kIgnore };

struct Finishable {
  bool motion_finished = false;
};

class JointVelocities : public Finishable {
 public:
  JointVelocities(const std::array<double, 7>& joint_velocities) noexcept  // NOLINT: as libfranka
      : dq(joint_velocities) {}
  std::array<double, 7> dq{};
};

template <class T>
inline T MotionFinished(T command) noexcept {
  command.motion_finished = true;
  return command;
}

}  // namespace franka
