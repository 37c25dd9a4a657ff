// What /proc says of one process: CPU time, resident memory, open fds. For
// the metrics of QEMU (per VM) and of agentvmd itself. Best effort: a
// process that is gone, or a field that cannot be read, yields nullopt.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace agentvm {

struct ProcessStats {
  double cpu_seconds = 0;             // user + system
  std::uint64_t resident_bytes = 0;   // VmRSS
};

// `proc` is the procfs root: "/proc", or a directory laid out like it in tests.
std::optional<ProcessStats> ReadProcessStats(pid_t pid, const std::string& proc = "/proc");
// Entries of <proc>/<pid>/fd; nullopt if it cannot be listed.
std::optional<std::uint64_t> CountOpenFds(pid_t pid, const std::string& proc = "/proc");

}  // namespace agentvm
