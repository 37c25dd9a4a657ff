#include "common/pending.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace agentvm {
namespace {

using std::chrono::milliseconds;

TEST(PendingTest, WaiterGetsTheValueSetLater) {
  boost::asio::io_context io;
  auto pending = std::make_shared<Pending<int>>(io.get_executor());
  auto result = boost::asio::co_spawn(io, pending->Wait(std::chrono::seconds(10)), boost::asio::use_future);
  boost::asio::post(io, [pending] { pending->Set(42); });
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_EQ(result.get(), 42);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(PendingTest, DeadlineWinsWhenNobodySets) {
  boost::asio::io_context io;
  Pending<int> pending(io.get_executor());
  auto result = boost::asio::co_spawn(io, pending.Wait(milliseconds(20)), boost::asio::use_future);
  io.run();
  EXPECT_FALSE(result.get().has_value());
}

TEST(PendingTest, ValueSetBeforeWaitIsReturnedAtOnceAndFirstSetWins) {
  boost::asio::io_context io;
  Pending<std::string> pending(io.get_executor());
  pending.Set("first");
  pending.Set("second");
  EXPECT_TRUE(pending.done());
  auto result = boost::asio::co_spawn(io, pending.Wait(std::chrono::seconds(10)), boost::asio::use_future);
  io.run();
  EXPECT_EQ(result.get(), "first");
}

}  // namespace
}  // namespace agentvm
