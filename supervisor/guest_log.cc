#include "supervisor/guest_log.h"

#include <cstdio>

namespace agentvm {

std::string GuestText(std::string_view text, std::size_t max_bytes) {
  std::string out;
  const std::string_view kept = text.substr(0, max_bytes);
  out.reserve(kept.size() + 16);
  for (char c : kept) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    }
  }
  if (kept.size() < text.size()) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool LogBudget::Take(Clock::time_point now) {
  if (now - window_start_ >= interval_) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  reported_suppressed_ = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace agentvm
