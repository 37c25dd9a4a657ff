#include "common/spawn.h"

#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

namespace agentvm {
namespace {

// A logger of its own that writes into `out`.
std::shared_ptr<spdlog::logger> CapturingLogger(std::ostringstream& out) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto log = std::make_shared<spdlog::logger>("spawn-test", sink);
  log->set_pattern("%l %v");
  return log;
}

boost::asio::awaitable<void> Throws() {
  throw std::runtime_error("disk on fire");
  co_return;
}

TEST(SpawnDetachedTest, AnExceptionIsLoggedNamingTheWork) {
  boost::asio::io_context io;
  std::ostringstream out;
  SpawnDetached(io, Throws(), "vm-1: fill loop", CapturingLogger(out));
  io.run();
  EXPECT_EQ(out.str(), "error vm-1: fill loop ended with an exception: disk on fire\n");
}

TEST(SpawnDetachedTest, WorkThatEndsWellLogsNothing) {
  boost::asio::io_context io;
  std::ostringstream out;
  bool ran = false;
  auto work = [&ran]() -> boost::asio::awaitable<void> {
    ran = true;
    co_return;
  };
  SpawnDetached(io, work(), "quiet", CapturingLogger(out));
  io.run();
  EXPECT_TRUE(ran);
  EXPECT_EQ(out.str(), "");
}

TEST(SpawnDetachedTest, ALambdaKeepsItsCapturesForTheWholeCoroutine) {
  boost::asio::io_context io;
  std::ostringstream out;
  std::string seen;
  {
    auto text = std::make_shared<std::string>("still here");
    SpawnDetached(
        io,
        [text, &seen]() -> boost::asio::awaitable<void> {
          boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
          timer.expires_after(std::chrono::milliseconds(1));
          co_await timer.async_wait(boost::asio::use_awaitable);
          seen = *text;
        },
        "captures", CapturingLogger(out));
  }
  io.run();
  EXPECT_EQ(seen, "still here");
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace agentvm
