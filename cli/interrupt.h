// Ctrl-C handling for run and exec. A signal handler can reach only globals,
// so this is process-wide: while an InterruptScope with handlers installed is
// alive, SIGINT/SIGTERM/SIGHUP are recorded and shut down the connection in
// active_fd_slot() (interrupting the blocking read of an exec stream). A third
// signal exits at once without cleaning up.
#pragma once

#include <atomic>

namespace agentvm::cli {

// Publishes a streaming connection's fd for the signal handler while in
// scope. The slot holds -1 when idle, and the handler leaves another
// negative value in it once it fired: a connection published after that is
// shut down at once, so an interrupt can never be missed between check and
// publish.
class ActiveFd {
 public:
  ActiveFd(std::atomic<int>* slot, int fd);
  ~ActiveFd();
  ActiveFd(const ActiveFd&) = delete;
  ActiveFd& operator=(const ActiveFd&) = delete;

 private:
  std::atomic<int>* slot_;
  int fd_;
};

class InterruptScope {
 public:
  // Without `install_handlers` nothing is installed and interrupted() stays
  // false (tests and library use).
  explicit InterruptScope(bool install_handlers);
  ~InterruptScope();  // restores the previous handlers

  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  bool interrupted() const;
  std::atomic<int>* active_fd_slot();

 private:
  bool installed_ = false;
};

}  // namespace agentvm::cli
