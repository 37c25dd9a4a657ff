// What identifies a running process beyond its pid, which the kernel recycles:
// its start time and its command line, both from /proc. A restarted daemon
// trusts a recorded QEMU pid only when all three still match.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace agentvm {

// Field 22 of /proc/<pid>/stat (clock ticks after boot); nullopt when the
// process is gone.
std::optional<std::uint64_t> ProcessStartTime(pid_t pid, const std::string& proc = "/proc");

// The NUL-separated command line, as one string; empty when the process is gone.
std::string ProcessCommandLine(pid_t pid, const std::string& proc = "/proc");

// True when `pid` is the QEMU an earlier daemon recorded: it runs, started
// at `start_time` (when one was recorded) and its command line names
// `runtime_dir`.
bool IsRecordedQemu(pid_t pid, std::uint64_t start_time, const std::string& runtime_dir,
                    const std::string& proc = "/proc");

// Processes whose command line contains `needle` (e.g. "<run-dir>/vms/").
std::vector<pid_t> ProcessesWithArg(const std::string& needle, const std::string& proc = "/proc");

// Kills a process this daemon did not start (so cannot reap) and waits up to
// 5 s until it is gone. Through a pidfd: a recycled pid is never hit.
void KillStranger(pid_t pid);

}  // namespace agentvm
