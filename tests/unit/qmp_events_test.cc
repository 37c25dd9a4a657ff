// Asynchronous QMP events: subscribers, one-shot waiters, and their ordering
// relative to command replies.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "qmp/qmp_client.h"
#include "qmp/testing/coroutine_test.h"
#include "qmp/testing/fake_qmp_peer.h"
#include "qmp/testing/qmp_peer_test.h"

namespace agentvm::qmp {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;

class QmpEventsTest : public testing::QmpPeerTest {
};

TEST_F(QmpEventsTest, SubscribersSeeEventsInOrderBeforeTheReplyThatFollows) {
  std::vector<QmpEvent> seen;
  client().Subscribe([&](const QmpEvent& event) { seen.push_back(event); });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto stop = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(stop);
    co_await peer().SendEvent("STOP");
    json shutdown = {{"guest", false}, {"reason", "host-qmp-quit"}};
    co_await peer().SendEvent("SHUTDOWN", shutdown);
    co_await peer().Reply(*stop);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    CO_ASSERT_TRUE(co_await client().Execute("stop"));
    CO_ASSERT_TRUE(seen.size() == 2);
    EXPECT_EQ(seen[0].name, "STOP");
    EXPECT_EQ(seen[0].data, json::object());
    EXPECT_EQ(seen[0].timestamp.value("seconds", 0), 1700000000);
    EXPECT_EQ(seen[1].name, "SHUTDOWN");
    EXPECT_EQ(seen[1].data.value("reason", ""), "host-qmp-quit");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpEventsTest, UnsubscribingStopsDeliveryEvenFromInsideAHandler) {
  int first = 0, second = 0, once = 0;
  int first_token = client().Subscribe([&](const QmpEvent&) { ++first; });
  client().Subscribe([&](const QmpEvent&) { ++second; });
  int once_token = 0;
  once_token = client().Subscribe([&](const QmpEvent&) {
    ++once;
    client().Unsubscribe(once_token);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    co_await peer().SendEvent("RESUME");
    auto ping = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(ping);
    co_await peer().SendEvent("RESUME");
    co_await peer().Reply(*ping);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    CO_ASSERT_TRUE(co_await client().WaitForEvent("RESUME", 2s));
    client().Unsubscribe(first_token);
    CO_ASSERT_TRUE(co_await client().Execute("ping"));
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 2);
  EXPECT_EQ(once, 1);
}

TEST_F(QmpEventsTest, ExpectEventCatchesAnEventSentBeforeTheReply) {
  // Real QEMU sends STOP before the reply to `stop`: register first, act, then wait.
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto stop = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(stop);
    co_await peer().SendEvent("STOP");
    co_await peer().Reply(*stop);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    EventWaiter stopped = client().ExpectEvent("STOP");
    CO_ASSERT_TRUE(co_await client().Execute("stop"));
    auto event = co_await stopped.Wait(1s);
    CO_ASSERT_TRUE(event);
    EXPECT_EQ(event->name, "STOP");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpEventsTest, WaitForEventSkipsOtherEventsAndTimesOut) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto go = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(go);
    co_await peer().Reply(*go);
    co_await peer().SendEvent("RESUME");
    json job = {{"id", "mig"}, {"status", "concluded"}};
    co_await peer().SendEvent("JOB_STATUS_CHANGE", job);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    EventWaiter job = client().ExpectEvent("JOB_STATUS_CHANGE");
    CO_ASSERT_TRUE(co_await client().Execute("go"));
    auto event = co_await job.Wait(2s);
    CO_ASSERT_TRUE(event);
    EXPECT_EQ(event->data.value("status", ""), "concluded");

    auto start = std::chrono::steady_clock::now();
    auto none = co_await client().WaitForEvent("SHUTDOWN", 100ms);
    CO_ASSERT_TRUE(!none);
    EXPECT_EQ(none.error().kind, QmpError::Kind::kTimeout);
    EXPECT_EQ(none.error().ToString(), "qmp: no SHUTDOWN event within 100 ms");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpEventsTest, AFilterPicksTheEventWorthWaitingFor) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto migrate = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(migrate);
    co_await peer().Reply(*migrate);
    // All in one burst: a waiter re-armed after each event could miss the last.
    std::string burst;
    for (const char* status : {"setup", "active", "completed"}) {
      json event = {{"event", "MIGRATION"}, {"data", {{"status", status}}}};
      burst += event.dump() + "\n";
    }
    co_await peer().SendRaw(burst);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    EventWaiter done = client().ExpectEvent("MIGRATION", [](const QmpEvent& event) {
      return event.data.value("status", "") == "completed";
    });
    EventWaiter any = client().ExpectEvent("MIGRATION");
    CO_ASSERT_TRUE(co_await client().Execute("migrate"));
    auto first = co_await any.Wait(2s);
    CO_ASSERT_TRUE(first);
    EXPECT_EQ(first->data.value("status", ""), "setup");
    auto last = co_await done.Wait(2s);
    CO_ASSERT_TRUE(last);
    EXPECT_EQ(last->data.value("status", ""), "completed");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpEventsTest, EventWaitsFailWhenQemuGoesAway) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto ping = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(ping);
    peer().Close();
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    EventWaiter shutdown = client().ExpectEvent("SHUTDOWN");
    runner_.Spawn([&]() -> awaitable<void> { co_await client().Execute("ping"); });
    auto event = co_await shutdown.Wait(5s);
    CO_ASSERT_TRUE(!event);
    EXPECT_EQ(event.error().kind, QmpError::Kind::kDisconnected);
    // Waits started after the loss fail at once.
    auto late = co_await client().WaitForEvent("SHUTDOWN", 5s);
    CO_ASSERT_TRUE(!late);
    EXPECT_EQ(late.error().kind, QmpError::Kind::kDisconnected);
  });
  EXPECT_TRUE(runner_.RunFor(3s)) << runner_.Describe();
}

TEST_F(QmpEventsTest, AHandlerMayDestroyTheClient) {
  client().Subscribe([&](const QmpEvent&) { pair_.client.reset(); });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto ping = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(ping);
    co_await peer().SendEvent("STOP");
    co_await peer().Reply(*ping);
    EXPECT_FALSE(co_await peer().ReadMessage());  // the client hung up
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto reply = co_await client().Execute("ping");
    CO_ASSERT_TRUE(!reply);
    EXPECT_EQ(reply.error().kind, QmpError::Kind::kDisconnected);
    EXPECT_EQ(pair_.client, nullptr);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

}  // namespace
}  // namespace agentvm::qmp
