// Where a VM's boot spends its time, phase by phase, for the one log line a
// boot ends with ("restored in 372 ms (overlay 1 ms, spawn 4 ms, ...)"):
// the phases of a restore are what its speed is made of (bench/README.md).
#pragma once

#include <chrono>
#include <string>

#include <fmt/format.h>

namespace agentvm {

class BootPhases {
 public:
  using Clock = std::chrono::steady_clock;

  // Ends the current phase, named `name`, and starts the next.
  void Done(const char* name) {
    const Clock::time_point now = Clock::now();
    text_ += fmt::format("{}{} {} ms", text_.empty() ? "" : ", ", name,
                         std::chrono::duration_cast<std::chrono::milliseconds>(now - phase_start_).count());
    phase_start_ = now;
  }

  const std::string& text() const { return text_; }
  std::chrono::milliseconds total() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
  }

 private:
  Clock::time_point start_ = Clock::now();
  Clock::time_point phase_start_ = start_;
  std::string text_;
};

}  // namespace agentvm
