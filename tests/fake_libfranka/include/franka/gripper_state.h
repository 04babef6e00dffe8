// Test double of libfranka 0.9.x's franka/gripper_state.h.
#pragma once

#include <cstdint>

#include <franka/duration.h>

namespace franka {

struct GripperState {
  double width{};      // m
  double max_width{};  // m
  bool is_grasped{};
  uint16_t temperature{};
  Duration time{};
};

}  // namespace franka
