// The CLI's one way to hand bytes to a local fd (stdout, stderr, a file):
// all of them, through short writes and EINTR.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace agentvm::cli {

// False when the fd stopped taking them (a closed pipe, a full disk); errno says why.
inline bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace agentvm::cli
