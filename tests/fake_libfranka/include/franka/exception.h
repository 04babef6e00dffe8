// Test double of libfranka 0.9.x's franka/exception.h: the exception types
// pacd-franka-driver catches.
#pragma once

#include <stdexcept>
#include <string>

namespace franka {

struct Exception : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ControlException : public Exception {
  explicit ControlException(const std::string& what) noexcept : Exception(what) {}
};

struct CommandException : public Exception {
  using Exception::Exception;
};

struct NetworkException : public Exception {
  using Exception::Exception;
};

struct RealtimeException : public Exception {
  using Exception::Exception;
};

struct InvalidOperationException : public Exception {
  using Exception::Exception;
};

}  // namespace franka
