// ChildProcess: one program the daemon started (QEMU, qemu-img). It owns the
// process: destroying a ChildProcess that still runs kills and reaps it, so no
// code path leaks a QEMU. Exit is observed through a pidfd on the io_context,
// so a death is seen the moment it happens, without SIGCHLD handlers.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "common/error.h"

namespace agentvm {

struct ExitStatus {
  std::optional<int> code;    // exited normally
  std::optional<int> signal;  // killed by a signal

  bool success() const { return code && *code == 0; }
  std::string Describe() const;  // "exited with status 1", "killed by signal 9 (Killed)"
};

// Decodes a waitpid() status word.
ExitStatus ExitStatusFromWait(int wait_status);

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0] is the program, looked up in PATH
  std::string stdout_path;        // appended to; empty: /dev/null
  std::string stderr_path;        // appended to; empty: /dev/null
  std::vector<int> pass_fds;      // kept open across exec; every other fd closes
};

class ChildProcess {
 public:
  static Result<std::unique_ptr<ChildProcess>> Launch(boost::asio::any_io_executor executor,
                                                      const LaunchSpec& spec);
  // Takes over a child this process started itself (a jailed clone) and the
  // pidfd it got for it.
  static std::unique_ptr<ChildProcess> Adopt(boost::asio::any_io_executor executor, pid_t pid, int pidfd);
  // Takes over a child this process forked itself, opening its pidfd; if
  // that fails the child is killed and reaped, so it never runs unowned.
  static Result<std::unique_ptr<ChildProcess>> TakeOver(boost::asio::any_io_executor executor, pid_t pid);
  ~ChildProcess();  // SIGKILL and reap if still running

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::optional<ExitStatus>& exit_status() const { return exit_status_; }

  // Completes when the process has exited and been reaped. Safe to await from
  // several coroutines; each sees the same status.
  boost::asio::awaitable<ExitStatus> WaitExit();

  // Blocks the thread until the process has exited and been reaped: for
  // short start-up probes, before the io_context runs.
  ExitStatus WaitBlocking();

  // Sends `signal` unless the process is already reaped (never a recycled pid).
  void Kill(int signal);

 private:
  ChildProcess(boost::asio::any_io_executor executor, pid_t pid, int pidfd);
  bool TryReap();

  pid_t pid_;
  boost::asio::posix::stream_descriptor pidfd_;
  std::optional<ExitStatus> exit_status_;
};

// Runs argv to completion; on failure the error carries its stderr.
boost::asio::awaitable<Result<void>> RunToCompletion(boost::asio::any_io_executor executor,
                                                     std::vector<std::string> argv,
                                                     std::string stderr_path);

}  // namespace agentvm
