// Pause: a coroutine sleep on the caller's executor (settling between
// benchmark rounds, polling the daemon).
#pragma once

#include <chrono>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace agentvm::bench {

inline boost::asio::awaitable<void> Pause(std::chrono::milliseconds how_long) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, how_long);
  boost::system::error_code ec;
  co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

}  // namespace agentvm::bench
