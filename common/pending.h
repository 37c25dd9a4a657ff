// Pending<T>: a one-shot value that one coroutine awaits (with a deadline) and
// some other code on the same executor supplies later, e.g. a QMP reply matched
// by id, or a guest's "exit" frame. Boost 1.74 has neither asio channels nor
// awaitable operators, so this is built from a steady_timer that never expires
// on its own: Set() cancels it, which wakes the waiter.
//
// Single-threaded by design: Set() and Wait() must run on the same strand
// (agentvm runs each io_context on one thread). Hold it by shared_ptr when the
// setter may outlive the waiter's frame.
#pragma once

#include <chrono>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/error.h"

namespace agentvm {

template <class T>
class Pending {
 public:
  explicit Pending(boost::asio::any_io_executor executor)
      : timer_(executor, std::chrono::steady_clock::time_point::max()) {}

  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;

  bool done() const { return value_.has_value(); }

  // The first Set wins; later ones are ignored, so racing "reply arrived" and
  // "connection lost" paths need no coordination.
  void Set(T value) {
    if (value_) return;
    value_.emplace(std::move(value));
    timer_.cancel();
  }

  // Waits until Set() or until `timeout` passes; nullopt means the deadline won.
  boost::asio::awaitable<std::optional<T>> Wait(std::chrono::steady_clock::duration timeout) {
    if (!value_) {
      timer_.expires_after(timeout);
      boost::system::error_code ec;
      co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    if (!value_) co_return std::nullopt;
    co_return std::move(*value_);
  }

 private:
  boost::asio::steady_timer timer_;
  std::optional<T> value_;
};

}  // namespace agentvm
