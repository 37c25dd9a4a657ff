// Deadline: one time budget shared by the several steps of an operation, so
// each step waits at most for what is left of it.
#pragma once

#include <algorithm>
#include <chrono>

namespace agentvm {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Deadline(std::chrono::milliseconds timeout) : at_(Clock::now() + timeout), timeout_(timeout) {}

  // What is left, at least 1 ms: a step given 0 would not wait at all, and
  // its own timeout error names the step that ran out.
  std::chrono::milliseconds Remaining() const {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(at_ - Clock::now()));
  }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  Clock::time_point at_;
  std::chrono::milliseconds timeout_;
};

}  // namespace agentvm
