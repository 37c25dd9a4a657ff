// AdoptedQemuProcess: a QEMU an earlier daemon launched and a restarted one
// takes over. It is not this daemon's child (it was reparented when its
// daemon died), so it cannot be reaped and its exit status is lost; its
// exit is seen through a pidfd like a child's, and `on_exit` gives back what
// its jail held (cgroups, file ownership, uid slot) once it is gone.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "common/error.h"
#include "supervisor/vm_host.h"

namespace agentvm {

class AdoptedQemuProcess final : public QemuProcess {
 public:
  // Opens a pidfd for `pid`; fails when the process is already gone.
  static Result<std::unique_ptr<AdoptedQemuProcess>> Open(boost::asio::any_io_executor executor, pid_t pid,
                                                          std::function<void()> on_exit = nullptr);
  // Kills a QEMU still running (it is ours now) and gives its jail back.
  ~AdoptedQemuProcess() override;

  pid_t pid() const override { return pid_; }
  const std::optional<ExitStatus>& exit_status() const override { return exit_status_; }
  boost::asio::awaitable<ExitStatus> WaitExit() override;
  void Kill(int signal) override;

 private:
  AdoptedQemuProcess(boost::asio::any_io_executor executor, pid_t pid, int pidfd, std::function<void()> on_exit);
  bool Exited();  // polls the pidfd; on exit, records it and runs on_exit
  void Release();

  pid_t pid_;
  boost::asio::posix::stream_descriptor pidfd_;
  std::function<void()> on_exit_;
  std::optional<ExitStatus> exit_status_;
};

}  // namespace agentvm
