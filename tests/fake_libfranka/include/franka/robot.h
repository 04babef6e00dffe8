// Test double of libfranka 0.9.x's franka/robot.h (tests/fake_libfranka/README.md):
// Robot with the joint-velocity control loop, readOnce, automaticErrorRecovery.
#pragma once

#include <functional>
#include <string>

#include <franka/control_types.h>
#include <franka/duration.h>
#include <franka/lowpass_filter.h>
#include <franka/robot_state.h>

namespace franka {

class Robot {
 public:
  explicit Robot(const std::string& franka_address,
                 RealtimeConfig realtime_config = RealtimeConfig::kEnforce,
                 size_t log_size = 50);
  ~Robot() noexcept;
  Robot(const Robot&) = delete;
  Robot& operator=(const Robot&) = delete;

  void control(
      std::function<JointVelocities(const RobotState&, franka::Duration)> motion_generator_callback,
      ControllerMode controller_mode = ControllerMode::kJointImpedance,
      bool limit_rate = true,
      double cutoff_frequency = kDefaultCutoffFrequency);

  RobotState readOnce();

  void automaticErrorRecovery();

 private:
  RobotState state_;
};

}  // namespace franka
