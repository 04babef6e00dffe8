// Test double of libfranka 0.9.x's franka/duration.h (tests/fake_libfranka/README.md):
// only what pacd-franka-driver uses, written from the public API.
#pragma once

#include <cstdint>

namespace franka {

// A time span in whole milliseconds (the robot's 1 kHz ticks).
class Duration {
 public:
  Duration() noexcept = default;
  explicit Duration(uint64_t milliseconds) noexcept : ms_(milliseconds) {}
  double toSec() const noexcept { return static_cast<double>(ms_) / 1e3; }
  uint64_t toMSec() const noexcept { return ms_; }

 private:
  uint64_t ms_ = 0;
};

}  // namespace franka
