// Test double of libfranka 0.9.x's franka/gripper.h: it records every call
// (tests/fake_libfranka/README.md).
#pragma once

#include <mutex>
#include <string>

#include <franka/gripper_state.h>

namespace franka {

class Gripper {
 public:
  explicit Gripper(const std::string& franka_address);
  ~Gripper() noexcept;
  Gripper(const Gripper&) = delete;
  Gripper& operator=(const Gripper&) = delete;

  bool homing() const;
  bool grasp(double width, double speed, double force, double epsilon_inner = 0.005,
             double epsilon_outer = 0.005) const;
  bool move(double width, double speed) const;
  bool stop() const;
  GripperState readOnce() const;

 private:
  mutable std::mutex mutex_;
  mutable GripperState state_;
};

}  // namespace franka
