#include "cli/ndjson_lines.h"

namespace agentvm::cli {

Result<void> NdjsonLines::Feed(std::string_view bytes) {
  pending_.append(bytes);
  std::size_t start = 0;
  for (std::size_t newline; (newline = pending_.find('\n', start)) != std::string::npos; start = newline + 1) {
    if (newline == start) continue;
    if (auto ok = on_line_(std::string_view(pending_).substr(start, newline - start)); !ok) return ok;
  }
  pending_.erase(0, start);
  if (pending_.size() > max_line_) {
    return Fail(ErrorCode::kInternal, "agentvmd sent " + what_ + " over " + std::to_string(max_line_) + " bytes");
  }
  return {};
}

Result<void> NdjsonLines::Finish() {
  if (pending_.empty()) return {};
  std::string last = std::move(pending_);
  pending_.clear();
  return on_line_(last);
}

}  // namespace agentvm::cli
