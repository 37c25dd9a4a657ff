// Ctrl-C handling for run and exec. A signal handler can reach only globals,
// so this is process-wide: while an InterruptScope with handlers installed is
// alive, SIGINT/SIGTERM/SIGHUP are recorded and shut down the connection in
// active_fd_slot() (interrupting the blocking read of an exec stream). A third
// signal exits at once without cleaning up.
#pragma once

#include <atomic>

namespace agentvm::cli {

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
