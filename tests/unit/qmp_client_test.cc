// QmpClient against a scripted fake QEMU on a socketpair: handshake, command
// ids, out-of-order replies, typed errors, timeouts.
#include "qmp/qmp_client.h"

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "qmp/testing/coroutine_test.h"
#include "qmp/testing/fake_qmp_peer.h"
#include "qmp/testing/qmp_peer_test.h"

namespace agentvm::qmp {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;

class QmpClientTest : public testing::QmpPeerTest {
};

TEST_F(QmpClientTest, HandshakeReadsVersionAndNegotiatesCapabilities) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().SendRaw(
        R"({"QMP": {"version": {"qemu": {"micro": 1, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}})"
        "\r\n"));
    auto caps = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(caps);
    EXPECT_EQ(caps->value("execute", ""), "qmp_capabilities");
    EXPECT_TRUE(caps->contains("id"));
    EXPECT_FALSE(caps->contains("arguments"));
    co_await peer().Reply(*caps);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    EXPECT_FALSE(client().connected());
    auto result = co_await client().Handshake(2s);
    EXPECT_TRUE(result) << (result ? "" : result.error().ToString());
    EXPECT_TRUE(client().connected());
    EXPECT_EQ(client().qemu_version(), "7.2.1");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, ExecuteSendsArgumentsAndReturnsTheResult) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto command = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(command);
    EXPECT_EQ(command->value("execute", ""), "human-monitor-command");
    EXPECT_EQ(command->value("arguments", json()), json({{"command-line", "info status"}}));
    co_await peer().Reply(*command, "VM status: running\r\n");
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    // Braced json built outside the co_await: g++ 12 rejects it inside.
    json arguments = {{"command-line", "info status"}};
    auto result = co_await client().Execute("human-monitor-command", arguments);
    CO_ASSERT_TRUE(result);
    EXPECT_EQ(*result, "VM status: running\r\n");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, RepliesAreMatchedByIdEvenOutOfOrderAndAmongEvents) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    std::vector<json> commands;
    for (int i = 0; i < 3; ++i) {
      auto command = co_await peer().ReadMessage();
      CO_ASSERT_TRUE(command);
      commands.push_back(*command);
    }
    std::set<json> ids;
    for (const auto& c : commands) ids.insert(c["id"]);
    EXPECT_EQ(ids.size(), 3u) << "ids must be unique";
    // Answer newest first, with events in between; each reply echoes the tag.
    json rtc = {{"offset", 1}};
    co_await peer().SendEvent("RTC_CHANGE", rtc);
    for (int i = 2; i >= 0; --i) {
      json reply = {{"tag", commands[i]["arguments"]["tag"]}};
      co_await peer().Reply(commands[i], reply);
      json balloon = {{"actual", i}};
      co_await peer().SendEvent("BALLOON_CHANGE", balloon);
    }
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    for (std::string tag : {"a", "b", "c"}) {
      runner_.Spawn([&, tag]() -> awaitable<void> {
        json arguments = {{"tag", tag}};
        auto result = co_await client().Execute("echo", arguments);
        CO_ASSERT_TRUE(result);
        EXPECT_EQ(result->value("tag", ""), tag);
      });
    }
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, QmpErrorsSurfaceTypedAndTheConnectionStaysUsable) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto bad = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(bad);
    co_await peer().ReplyError(*bad, "CommandNotFound", "The command query-nothing has not been found");
    auto good = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(good);
    json status = {{"status", "running"}};
    co_await peer().Reply(*good, status);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto bad = co_await client().Execute("query-nothing");
    CO_ASSERT_TRUE(!bad);
    EXPECT_EQ(bad.error().kind, QmpError::Kind::kCommandFailed);
    EXPECT_EQ(bad.error().command, "query-nothing");
    EXPECT_EQ(bad.error().qmp_class, "CommandNotFound");
    EXPECT_EQ(bad.error().message, "The command query-nothing has not been found");
    Error error = bad.error().ToError();
    EXPECT_EQ(error.code, ErrorCode::kNotFound);
    EXPECT_EQ(error.message,
              "qmp query-nothing: CommandNotFound: The command query-nothing has not been found");

    auto good = co_await client().Execute("query-status");
    CO_ASSERT_TRUE(good);
    EXPECT_EQ(good->value("status", ""), "running");
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, TimeoutIsPromptAndALateReplyIsDroppedSafely) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto slow = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(slow);
    // The client sends the next command only after giving up on this one.
    auto next = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(next);
    json slow_reply = {{"who", "slow"}}, next_reply = {{"who", "next"}};
    co_await peer().Reply(*slow, slow_reply);
    co_await peer().Reply(*next, next_reply);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto start = std::chrono::steady_clock::now();
    auto slow = co_await client().Execute("slow", nullptr, 100ms);
    auto elapsed = std::chrono::steady_clock::now() - start;
    CO_ASSERT_TRUE(!slow);
    EXPECT_EQ(slow.error().kind, QmpError::Kind::kTimeout);
    EXPECT_EQ(slow.error().ToError().code, ErrorCode::kTimeout);
    EXPECT_EQ(slow.error().ToString(), "qmp slow: no reply within 100 ms");
    EXPECT_GE(elapsed, 100ms);
    EXPECT_LT(elapsed, 1s);

    auto next = co_await client().Execute("next");
    CO_ASSERT_TRUE(next);
    EXPECT_EQ(next->value("who", ""), "next");
    EXPECT_TRUE(client().connected());
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, LargeRepliesBelowTheLimitArrive) {
  const std::string big(3 << 20, 'q');
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto command = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(command);
    co_await peer().Reply(*command, big);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    auto result = co_await client().Execute("query-big");
    CO_ASSERT_TRUE(result);
    EXPECT_EQ(result->get<std::string>().size(), big.size());
  });
  EXPECT_TRUE(runner_.RunFor(10s)) << runner_.Describe();
}

TEST_F(QmpClientTest, CommandsBeforeTheHandshakeAreRefused) {
  runner_.Spawn([&]() -> awaitable<void> {
    auto result = co_await client().Execute("query-status");
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, QmpError::Kind::kProtocol);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, HandshakeTimesOutWithoutAGreetingAndCloses) {
  runner_.Spawn([&]() -> awaitable<void> {
    auto message = co_await peer().ReadMessage();  // silent peer: sees only the hang-up
    EXPECT_FALSE(message);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    auto result = co_await client().Handshake(100ms);
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, QmpError::Kind::kTimeout);
    EXPECT_FALSE(client().connected());
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, SomethingOtherThanAGreetingIsAProtocolError) {
  runner_.Spawn([&]() -> awaitable<void> {
    json hello = {{"hello", "world"}};
    co_await peer().Send(hello);
    EXPECT_FALSE(co_await peer().ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    auto result = co_await client().Handshake(2s);
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, QmpError::Kind::kProtocol);
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST_F(QmpClientTest, RefusedCapabilitiesFailTheHandshake) {
  runner_.Spawn([&]() -> awaitable<void> {
    co_await peer().SendGreeting();
    auto caps = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(caps);
    co_await peer().ReplyError(*caps, "GenericError", "no");
    EXPECT_FALSE(co_await peer().ReadMessage());
  });
  runner_.Spawn([&]() -> awaitable<void> {
    auto result = co_await client().Handshake(2s);
    CO_ASSERT_TRUE(!result);
    EXPECT_EQ(result.error().kind, QmpError::Kind::kCommandFailed);
    EXPECT_EQ(result.error().ToString(), "qmp qmp_capabilities: GenericError: no");
    EXPECT_FALSE(client().connected());
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

TEST(QmpErrorTest, MapsKindsAndClassesToErrorCodes) {
  using K = QmpError::Kind;
  EXPECT_EQ((QmpError{K::kCommandFailed, "x", "DeviceNotFound", "d"}.ToError().code),
            ErrorCode::kNotFound);
  EXPECT_EQ((QmpError{K::kCommandFailed, "x", "DeviceNotActive", "d"}.ToError().code),
            ErrorCode::kConflict);
  EXPECT_EQ((QmpError{K::kCommandFailed, "x", "GenericError", "d"}.ToError().code),
            ErrorCode::kInternal);
  EXPECT_EQ((QmpError{K::kTimeout, "x", "", "d"}.ToError().code), ErrorCode::kTimeout);
  EXPECT_EQ((QmpError{K::kDisconnected, "x", "", "d"}.ToError().code), ErrorCode::kUnavailable);
  EXPECT_EQ((QmpError{K::kProtocol, "", "", "d"}.ToError().code), ErrorCode::kUnavailable);
  EXPECT_EQ((QmpError{K::kConnect, "", "", "connect /x: refused"}.ToError().message),
            "qmp: connect /x: refused");
}

}  // namespace
}  // namespace agentvm::qmp
