// Losing QEMU: hang-ups, garbage, over-long lines, and the client being
// closed or destroyed while commands are outstanding.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "common/pending.h"
#include "qmp/qmp_client.h"
#include "qmp/testing/coroutine_test.h"
#include "qmp/testing/fake_qmp_peer.h"
#include "qmp/testing/qmp_peer_test.h"

namespace agentvm::qmp {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;
using Kind = QmpError::Kind;

class QmpDisconnectTest : public testing::QmpPeerTest {
 protected:

  // Spawns `count` commands named cmd0.. that each expect to fail with `kind`.
  void SpawnDoomedCommands(int count, Kind kind) {
    for (int i = 0; i < count; ++i) {
      runner_.Spawn([this, i, kind]() -> awaitable<void> {
        std::string name = "cmd" + std::to_string(i);
        auto result = co_await client().Execute(name);
        CO_ASSERT_TRUE(!result);
        EXPECT_EQ(result.error().kind, kind) << result.error().ToString();
        EXPECT_EQ(result.error().command, name);
      });
    }
  }
};

TEST_F(QmpDisconnectTest, HangUpFailsEveryPendingCommandAndFiresTheCallbackOnce) {
  std::vector<QmpError> lost;
  client().OnDisconnect([&](const QmpError& why) { lost.push_back(why); });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    for (int i = 0; i < 2; ++i) CO_ASSERT_TRUE(co_await peer().ReadMessage());
    peer().Close();
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    SpawnDoomedCommands(2, Kind::kDisconnected);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_FALSE(client().connected());
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].kind, Kind::kDisconnected);
  EXPECT_EQ(lost[0].ToError().code, ErrorCode::kUnavailable);

  // Later commands fail at once; the callback does not fire again.
  runner_.Spawn([&]() -> awaitable<void> {
    auto result = co_await client().Execute("query-status");
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, Kind::kDisconnected);
    EXPECT_EQ(result.error().ToString(), "qmp query-status: QEMU closed the QMP connection");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  runner_.Poll();
  EXPECT_EQ(lost.size(), 1u);
}

TEST_F(QmpDisconnectTest, AnIdleConnectionNoticesTheHangUpImmediately) {
  Pending<QmpError> lost(runner_.executor());
  client().OnDisconnect([&](const QmpError& why) { lost.Set(why); });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    peer().Close();
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto why = co_await lost.Wait(1s);
    CO_ASSERT_TRUE(why);
    EXPECT_EQ(why->kind, Kind::kDisconnected);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpDisconnectTest, ACallbackRegisteredAfterTheLossStillRunsOnce) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    peer().Close();
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto none = co_await client().WaitForEvent("NEVER", 2s);  // returns at the loss
    EXPECT_FALSE(none);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  int calls = 0;
  client().OnDisconnect([&](const QmpError&) { ++calls; });
  client().OnDisconnect([&](const QmpError&) { ++calls; });
  runner_.Poll();
  EXPECT_EQ(calls, 1);
}

TEST_F(QmpDisconnectTest, GarbageIsAProtocolErrorThatClosesTheConnection) {
  std::vector<QmpError> lost;
  client().OnDisconnect([&](const QmpError& why) { lost.push_back(why); });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    CO_ASSERT_TRUE(co_await peer().ReadMessage());
    co_await peer().SendRaw("this is not json\n");
    EXPECT_FALSE(co_await peer().ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    SpawnDoomedCommands(1, Kind::kProtocol);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].kind, Kind::kProtocol);
  EXPECT_NE(lost[0].message.find("this is not json"), std::string::npos) << lost[0].message;
}

TEST_F(QmpDisconnectTest, AnOverlongLineIsAProtocolErrorThatClosesTheConnection) {
  std::vector<QmpError> lost;
  client().OnDisconnect([&](const QmpError& why) { lost.push_back(why); });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    CO_ASSERT_TRUE(co_await peer().ReadMessage());
    // No newline in sight; the write fails once the client gives up reading.
    std::string endless(QmpClient::kMaxLineBytes + 4096, 'x');
    co_await peer().SendRaw(endless);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    SpawnDoomedCommands(1, Kind::kProtocol);
  });
  EXPECT_TRUE(runner_.RunFor(10s)) << runner_.Describe();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].kind, Kind::kProtocol);
  EXPECT_NE(lost[0].message.find("longer than"), std::string::npos) << lost[0].message;
}

TEST_F(QmpDisconnectTest, CloseFailsOutstandingWorkWithoutTheCallback) {
  int calls = 0;
  client().OnDisconnect([&](const QmpError&) { ++calls; });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    CO_ASSERT_TRUE(co_await peer().ReadMessage());
    client().Close();
    client().Close();
    EXPECT_FALSE(co_await peer().ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    SpawnDoomedCommands(1, Kind::kDisconnected);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  runner_.Poll();
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(client().connected());
}

TEST_F(QmpDisconnectTest, DestroyingTheClientWithCommandsOutstandingIsSafe) {
  int calls = 0;
  client().OnDisconnect([&](const QmpError&) { ++calls; });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    CO_ASSERT_TRUE(co_await peer().ReadMessage());
    pair_.client.reset();
    EXPECT_FALSE(co_await peer().ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    EventWaiter waiter = client().ExpectEvent("SHUTDOWN");
    // The awaitable must not need the client once started.
    auto pending = client().Execute("doomed", nullptr, 5s);
    auto result = co_await std::move(pending);
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, Kind::kDisconnected);
    auto event = co_await waiter.Wait(5s);
    EXPECT_FALSE(event);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(calls, 0);
}

TEST_F(QmpDisconnectTest, ADisconnectCallbackMayDestroyTheClient) {
  int calls = 0;
  client().OnDisconnect([&](const QmpError&) {
    ++calls;
    pair_.client.reset();
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    CO_ASSERT_TRUE(co_await peer().ReadMessage());
    peer().Close();
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto result = co_await client().Execute("doomed");
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, Kind::kDisconnected);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(pair_.client, nullptr);
}

}  // namespace
}  // namespace agentvm::qmp
