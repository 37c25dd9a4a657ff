#include "guest-images/agent/log.h"

#include <unistd.h>

#include <string>

namespace agentvm::guest {
namespace {

bool verbose = false;

void Write(std::string_view level, std::string_view message) {
  // One write() per line so lines from a restarted agent or from the kernel
  // do not interleave mid-line on the console.
  std::string line = "agentvm-guest: ";
  line.append(level).append(": ").append(message).push_back('\n');
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

void SetVerboseLogging(bool v) { verbose = v; }
bool VerboseLogging() { return verbose; }
void LogInfo(std::string_view message) { Write("info", message); }
void LogWarn(std::string_view message) { Write("warn", message); }
void LogDebug(std::string_view message) {
  if (verbose) Write("debug", message);
}

}  // namespace agentvm::guest
