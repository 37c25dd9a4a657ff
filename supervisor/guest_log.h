// Guest-supplied text in the daemon's log: a hostile guest chooses it, so it
// is cut short, made one printable line, and its lines are rate-limited so a
// guest cannot flood the host's log (or the disk behind it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace agentvm {

// At most this much of one guest string goes into a log line.
inline constexpr std::size_t kGuestTextLogBytes = 200;

// `text` for a log line: at most `max_bytes` of it, control and non-ASCII
// bytes as \xNN, and "...(N bytes)" when cut.
std::string GuestText(std::string_view text, std::size_t max_bytes = kGuestTextLogBytes);

// Lets `burst` lines through per `interval`; refuses and counts the rest.
class LogBudget {
 public:
  using Clock = std::chrono::steady_clock;
  LogBudget(int burst, Clock::duration interval) : burst_(burst), interval_(interval) {}

  // True when a line may be written at `now`. Then suppressed() tells how
  // many were refused since the last line let through.
  bool Take(Clock::time_point now = Clock::now());
  std::uint64_t suppressed() const { return reported_suppressed_; }

 private:
  int burst_;
  Clock::duration interval_;
  Clock::time_point window_start_{};
  int used_ = 0;
  std::uint64_t suppressed_ = 0;
  std::uint64_t reported_suppressed_ = 0;
};

}  // namespace agentvm
