#include "cli/interrupt.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iterator>

namespace agentvm::cli {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

std::atomic<int> g_signal_count{0};
std::atomic<int> g_active_fd{-1};
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

static_assert(std::atomic<int>::is_always_lock_free, "used from a signal handler");

extern "C" void OnInterrupt(int) {
  int count = ++g_signal_count;
  // -2 marks "interrupted" for a connection published later (ActiveFd).
  int fd = g_active_fd.exchange(-2);
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);  // async-signal-safe
  if (count >= 3) {
    static constexpr char kMessage[] = "\nagentvm: interrupted three times; exiting without cleanup\n";
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    ::_exit(130);
  }
}

}  // namespace

InterruptScope::InterruptScope(bool install_handlers) {
  g_signal_count = 0;
  g_active_fd = -1;
  if (!install_handlers) return;
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: blocking calls see EINTR
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], &action, &g_previous[i]);
  }
  installed_ = true;
}

InterruptScope::~InterruptScope() {
  if (!installed_) return;
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], &g_previous[i], nullptr);
  }
  g_active_fd = -1;
}

bool InterruptScope::interrupted() const { return installed_ && g_signal_count.load() > 0; }

std::atomic<int>* InterruptScope::active_fd_slot() { return &g_active_fd; }

ActiveFd::ActiveFd(std::atomic<int>* slot, int fd) : slot_(slot), fd_(fd) {
  if (!slot_) return;
  int idle = -1;
  if (!slot_->compare_exchange_strong(idle, fd_)) ::shutdown(fd_, SHUT_RDWR);
}

ActiveFd::~ActiveFd() {
  if (!slot_) return;
  int mine = fd_;
  slot_->compare_exchange_strong(mine, -1);
}

}  // namespace agentvm::cli
