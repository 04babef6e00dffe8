// Test double of libfranka 0.9.x's franka/lowpass_filter.h: the cutoff constants.
#pragma once

namespace franka {

constexpr double kMaxCutoffFrequency = 1000.0;
constexpr double kDefaultCutoffFrequency = 100.0;

}  // namespace franka
