// Notifier: a wake-up that one coroutine awaits and other code on the same
// executor gives, any number of times ("more output is queued", "the window
// has room again", "a loop ended"). Unlike Pending<T> it carries no value and
// is reusable. A Notify() while nobody waits is kept, so the next Wait()
// returns at once: a wake-up given between "check the condition" and "wait"
// is never lost. Waiters re-check their condition after every wake-up.
//
// Single-threaded by design, like Pending: Notify() and Wait() run on the
// same strand. One waiter at a time.
#pragma once

#include <chrono>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace agentvm {

class Notifier {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Notifier(boost::asio::any_io_executor executor) : timer_(executor, Clock::time_point::max()) {}
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Notify() {
    notified_ = true;
    timer_.cancel();
  }

  // Until Notify() or `deadline`; true when notified.
  boost::asio::awaitable<bool> WaitUntil(Clock::time_point deadline) {
    if (!notified_) {
      timer_.expires_at(deadline);
      boost::system::error_code ec;
      co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    co_return std::exchange(notified_, false);
  }

  boost::asio::awaitable<bool> Wait() { co_return co_await WaitUntil(Clock::time_point::max()); }

 private:
  boost::asio::steady_timer timer_;
  bool notified_ = false;
};

}  // namespace agentvm
