// QmpClient::Connect against a unix socket path, as with QEMU's
// `-qmp unix:PATH,server=on,wait=off`, including QEMU still starting up.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include "qmp/qmp_client.h"
#include "qmp/testing/coroutine_test.h"
#include "qmp/testing/fake_qmp_peer.h"

namespace agentvm::qmp {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using boost::asio::use_awaitable;
using testing::CoroutineRunner;
using Clock = std::chrono::steady_clock;

class QmpConnectTest : public ::testing::Test {
 protected:
  QmpConnectTest() {
    char pattern[] = "/tmp/qmp-connect-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    socket_path_ = dir_ + "/qmp.sock";
  }
  ~QmpConnectTest() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  CoroutineRunner runner_;
  std::string dir_;
  std::string socket_path_;
};

TEST_F(QmpConnectTest, RetriesUntilTheSocketAppearsThenHandshakes) {
  runner_.Spawn([&]() -> awaitable<void> {
    boost::asio::steady_timer timer(runner_.executor(), 150ms);
    co_await timer.async_wait(use_awaitable);
    boost::asio::local::stream_protocol::acceptor acceptor(
        runner_.executor(), boost::asio::local::stream_protocol::endpoint(socket_path_));
    testing::FakeQmpPeer peer(co_await acceptor.async_accept(use_awaitable));
    CO_ASSERT_TRUE(co_await peer.ServeHandshake(8, 1, 3));
    auto status = co_await peer.ReadMessage();
    CO_ASSERT_TRUE(status);
    co_await peer.Reply(*status);
    EXPECT_FALSE(co_await peer.ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    auto start = Clock::now();
    auto client = co_await QmpClient::Connect(runner_.executor(), socket_path_, 3s, "vm-c");
    CO_ASSERT_TRUE(client);
    EXPECT_GE(Clock::now() - start, 150ms);
    EXPECT_TRUE((*client)->connected());
    EXPECT_EQ((*client)->qemu_version(), "8.1.3");
    CO_ASSERT_TRUE(co_await (*client)->Execute("query-status"));
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpConnectTest, GivesUpAtTheDeadlineWhenNothingListens) {
  runner_.Spawn([&]() -> awaitable<void> {
    auto start = Clock::now();
    auto client = co_await QmpClient::Connect(runner_.executor(), socket_path_, 200ms, "vm-c");
    auto elapsed = Clock::now() - start;
    CO_ASSERT_TRUE(!client);
    EXPECT_EQ(client.error().kind, QmpError::Kind::kConnect);
    EXPECT_NE(client.error().message.find(socket_path_), std::string::npos);
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 1s);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpConnectTest, AnImpossiblePathFailsAtOnce) {
  runner_.Spawn([&]() -> awaitable<void> {
    std::string too_long = dir_ + "/" + std::string(200, 'p');
    auto client = co_await QmpClient::Connect(runner_.executor(), too_long, 5s, "vm-c");
    CO_ASSERT_TRUE(!client);
    EXPECT_EQ(client.error().kind, QmpError::Kind::kConnect);
  });
  EXPECT_TRUE(runner_.RunFor(1s)) << runner_.Describe();
}

TEST_F(QmpConnectTest, AServerThatNeverGreetsTimesOutWithinTheDeadline) {
  boost::asio::local::stream_protocol::acceptor acceptor(
      runner_.executor(), boost::asio::local::stream_protocol::endpoint(socket_path_));
  runner_.Spawn([&]() -> awaitable<void> {
    auto silent = co_await acceptor.async_accept(use_awaitable);
    testing::FakeQmpPeer peer(std::move(silent));
    EXPECT_FALSE(co_await peer.ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    auto start = Clock::now();
    auto client = co_await QmpClient::Connect(runner_.executor(), socket_path_, 200ms, "vm-c");
    CO_ASSERT_TRUE(!client);
    EXPECT_EQ(client.error().kind, QmpError::Kind::kTimeout);
    EXPECT_LT(Clock::now() - start, 1s);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

}  // namespace
}  // namespace agentvm::qmp
