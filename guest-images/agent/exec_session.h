// One running exec: the child process (its own session and process group),
// its three pipes, the stdin still to be written and its timeout. The agent's
// poll loop owns the sessions and calls in when their fds are ready.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/unique_fd.h"
#include "guest-images/agent/exec_cgroups.h"
#include "guest-images/agent/file_ops.h"
#include "guest-images/agent/output_queue.h"
#include "protocol/messages.h"

namespace agentvm::guest {

class ExecSession {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts request.argv (exec_launch.h), in a cgroup of its own from
  // `cgroups` when given. Fails (nothing left running) when the request is
  // malformed, the user is unknown, the cwd cannot be entered or the program
  // cannot be executed; the message reads like "exec nope: No such file or
  // directory".
  static AgentResult<std::unique_ptr<ExecSession>> Start(std::uint32_t stream, protocol::ExecStart start,
                                                         ExecCgroups* cgroups = nullptr);

  // Kills everything it started if the program still runs, and reaps it.
  ~ExecSession();
  ExecSession(const ExecSession&) = delete;
  ExecSession& operator=(const ExecSession&) = delete;

  std::uint32_t stream() const { return stream_; }
  pid_t pid() const { return pid_; }

  // fds to poll; -1 when there is nothing to wait for.
  int stdin_fd_to_poll() const;  // only while stdin bytes are pending
  // The output pipes, only while the host's window has room for more and
  // the program still runs (a reaped one is drained by Finish() instead).
  int stdout_fd_to_poll() const { return output_to_poll() ? stdout_.get() : -1; }
  int stderr_fd_to_poll() const { return output_to_poll() ? stderr_.get() : -1; }
  int pidfd() const { return reaped_ ? -1 : pidfd_.get(); }
  bool has_pidfd() const { return static_cast<bool>(pidfd_); }

  // When the timeout fires; nullopt without timeout or once it has fired.
  std::optional<Clock::time_point> deadline() const;

  void AddStdin(std::string_view data, bool eof);
  void WriteStdin();
  // Stdin bytes written to the program (or dropped: it closed its stdin)
  // that the host has not been told of yet; 0 while too few to be worth a
  // "stdin_ack". Resets the count.
  std::uint64_t TakeStdinAck();
  // One read from the pipe, at most what the window allows; output becomes
  // a stdout/stderr frame in `out`.
  void ReadOutput(protocol::OutputStream which, OutputQueue* out);
  // The host took `bytes` more of the output ("output_ack").
  void AddOutputCredit(std::uint64_t bytes);
  // To the process group; SIGKILL to everything the exec started.
  void Signal(int signal);
  void KillForTimeout();
  // A tty exec's terminal changed size (ignored without one).
  void Resize(protocol::TerminalSize size);

  // Reaps the child if it has exited (never blocks); true once reaped.
  bool TryReap();
  bool reaped() const { return reaped_; }

  // After TryReap(): queues what the pipes hold (a background grandchild may
  // keep them open forever, so a pipe is done at its first EAGAIN, not at
  // EOF), as far as the window allows, then the exit frame. False while
  // output is left that the window holds back: call again after more
  // credit. True once the exit frame is queued.
  bool Finish(OutputQueue* out);

 private:
  ExecSession(std::uint32_t stream) : stream_(stream) {}
  bool output_to_poll() const { return !reaped_ && (!output_credit_ || *output_credit_ > 0); }
  void KillAll();
  void CloseStdinIfDone();
  void CountStdinTaken(std::size_t bytes);
  // Writes what the pipe takes of `data` now and returns how much that was;
  // a program that closed its stdin takes (drops) all of it.
  std::size_t WriteSomeStdin(std::string_view data);
  enum class ReadState { kData, kAgain, kClosed };
  ReadState ReadOnce(protocol::OutputStream which, OutputQueue* out);

  std::uint32_t stream_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd stdin_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  UniqueFd terminal_;  // tty exec: the master side
  // The pipes' write ends (LaunchedExec): the exit is learned from the pidfd.
  UniqueFd stdout_writer_;
  UniqueFd stderr_writer_;
  ExecCgroups* cgroups_ = nullptr;
  std::unique_ptr<ExecCgroup> cgroup_;
  bool stdin_eof_is_noop_ = false;
  std::string stdin_pending_;
  std::size_t stdin_sent_ = 0;
  bool stdin_eof_ = false;
  // Each pipe is grown (F_SETPIPE_SZ) at most once, when it first fills.
  bool stdin_grown_ = false;
  bool stdout_grown_ = false;
  bool stderr_grown_ = false;
  std::uint64_t stdin_unacked_ = 0;
  // nullopt: no flow control; else what the host's window has room for.
  std::optional<std::uint64_t> output_window_;
  std::optional<std::uint64_t> output_credit_;
  std::size_t drained_after_reap_ = 0;
  std::optional<Clock::time_point> deadline_;
  bool timed_out_ = false;
  bool reaped_ = false;
  std::optional<int> wait_status_;  // nullopt: someone else reaped the child
};

}  // namespace agentvm::guest
