#include "supervisor/adopted_qemu.h"

#include <poll.h>

#include <cerrno>
#include <csignal>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "supervisor/pidfd.h"

namespace agentvm {

Result<std::unique_ptr<AdoptedQemuProcess>> AdoptedQemuProcess::Open(boost::asio::any_io_executor executor,
                                                                     pid_t pid, std::function<void()> on_exit) {
  const int pidfd = PidfdOpen(pid);
  if (pidfd < 0) return Fail(ErrnoError("pidfd_open " + std::to_string(pid), errno));
  return std::unique_ptr<AdoptedQemuProcess>(
      new AdoptedQemuProcess(std::move(executor), pid, pidfd, std::move(on_exit)));
}

AdoptedQemuProcess::AdoptedQemuProcess(boost::asio::any_io_executor executor, pid_t pid, int pidfd,
                                       std::function<void()> on_exit)
    : pid_(pid), pidfd_(std::move(executor), pidfd), on_exit_(std::move(on_exit)) {}

AdoptedQemuProcess::~AdoptedQemuProcess() {
  if (!Exited()) {
    PidfdSendSignal(pidfd_.native_handle(), SIGKILL);
    pollfd p{.fd = pidfd_.native_handle(), .events = POLLIN, .revents = 0};
    ::poll(&p, 1, 5000);
    Exited();
  }
  Release();
}

bool AdoptedQemuProcess::Exited() {
  if (exit_status_) return true;
  pollfd p{.fd = pidfd_.native_handle(), .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  // Its parent (init, since its daemon died) reaps it; how it ended is not
  // ours to learn, so the status stays empty.
  exit_status_ = ExitStatus{};
  Release();
  return true;
}

void AdoptedQemuProcess::Release() {
  if (auto release = std::exchange(on_exit_, nullptr)) release();
}

boost::asio::awaitable<ExitStatus> AdoptedQemuProcess::WaitExit() {
  while (!Exited()) {
    boost::system::error_code ec;
    co_await pidfd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                               boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
  co_return *exit_status_;
}

void AdoptedQemuProcess::Kill(int signal) {
  if (exit_status_) return;
  PidfdSendSignal(pidfd_.native_handle(), signal);
}

}  // namespace agentvm
