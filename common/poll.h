// PollUntil: waits, yielding to the io_context, until `done()` holds. For
// waiting on work that other coroutines of the same thread finish and that
// has no completion signal of its own (loops ending, builds draining at
// shutdown); not for hot paths.
#pragma once

#include <chrono>
#include <functional>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace agentvm {

inline boost::asio::awaitable<void> PollUntil(boost::asio::any_io_executor executor, std::function<bool()> done,
                                              std::chrono::milliseconds interval = std::chrono::milliseconds(20)) {
  boost::asio::steady_timer timer(executor);
  while (!done()) {
    timer.expires_after(interval);
    boost::system::error_code ec;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
}

}  // namespace agentvm
