// Process and directory hygiene shared by the benchmarks: every QEMU and
// agentvmd a benchmark starts is killed and reaped, and its files removed, on
// every path. Objects do it in their destructors; a signal (Ctrl-C) bypasses
// those, so each live process and the work directory are also listed here and
// EmergencyCleanup() handles whatever is still listed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

namespace agentvm::bench {

// Waits up to `timeout` for our child `pid` to exit, leaving it to be reaped
// by its owner (waitid WNOWAIT). True once it has exited.
bool WaitChildExit(pid_t pid, std::chrono::milliseconds timeout);

// SIGKILLs every QEMU whose pidfile is <run_dir>/vms/*/qemu.pid and whose
// command line names run_dir (so never a recycled pid), and waits for each.
// For QEMUs of an agentvmd that had to be killed itself.
void KillQemusUnder(const std::filesystem::path& run_dir);

// What to do with a listed process in an emergency.
enum class ProcessKind {
  kQemu,    // SIGKILL
  kDaemon,  // SIGTERM, a grace period, then SIGKILL and KillQemusUnder(run_dir)
};
void TrackProcess(pid_t pid, ProcessKind kind, std::filesystem::path run_dir = {});
void UntrackProcess(pid_t pid);
void TrackWorkDir(std::filesystem::path dir);
void UntrackWorkDir();

// Called on SIGINT/SIGTERM after the event loop stopped: ends every tracked
// process and removes the work directory.
void EmergencyCleanup();

// Runs `work` on a fresh io_context and returns its exit code (1 if it
// threw, with the reason on stderr). SIGINT, SIGTERM or SIGHUP stop it: the
// benchmark's objects are then suspended mid-flight, so instead of unwinding
// them this ends what they started from the lists (EmergencyCleanup) and
// exits 130. `name` prefixes the messages.
int RunInterruptibly(const std::string& name, std::function<boost::asio::awaitable<int>()> work);

// A fresh directory `<parent>/agentvm-bench-XXXXXX`, removed (with all it
// holds) by the destructor, which must run after everything using it ended.
class WorkDir {
 public:
  explicit WorkDir(const std::filesystem::path& parent);
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace agentvm::bench
