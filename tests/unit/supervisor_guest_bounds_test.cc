// What a hostile guest can make the host's end of the channel hold or do:
// junk frames without reading, a host queue the guest never drains, huge and
// deep headers, long strings in warning lines (guest_log.h).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "guest-images/agent/testing/agent_harness.h"
#include "protocol/messages.h"
#include "supervisor/guest_channel.h"
#include "supervisor/guest_log.h"
#include "tests/support/coroutine_runner.h"
#include "tests/support/guest_wire.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using guest::testing::FrameClient;

std::string Prefix(std::uint32_t header_len, std::uint32_t payload_len) {
  std::string p;
  for (std::uint32_t v : {header_len, payload_len}) {
    for (int shift : {24, 16, 8, 0}) p.push_back(static_cast<char>(v >> shift));
  }
  return p;
}

std::string RawFrame(const std::string& header) {
  return Prefix(static_cast<std::uint32_t>(header.size()), 0) + header;
}

void WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    ASSERT_GT(n, 0);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A guest that answers pings and reports the host's connection-level
// errors; `first` is what it writes before anything else.
class ReplyingGuest {
 public:
  ReplyingGuest(int fd, std::string first) : fd_(fd), thread_([this, first] {
    FrameClient client(fd_);
    client.SendRaw(first);
    while (!stop_) {
      auto frame = client.Next(50ms);
      if (!frame) {
        if (client.closed()) break;
        continue;
      }
      if (frame->type == protocol::kTypePing) client.Send(protocol::PongFrame(frame->stream));
      if (frame->type == protocol::kTypeError && frame->stream == 0) {
        std::lock_guard lock(mutex_);
        error_codes_.push_back(protocol::ParseError(*frame)->code);
      }
    }
  }) {}
  ~ReplyingGuest() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::vector<std::string> error_codes() {
    std::lock_guard lock(mutex_);
    return error_codes_;
  }

 private:
  int fd_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> error_codes_;
  std::thread thread_;
};

class GuestBoundsTest : public ::testing::Test {
 protected:
  asio::io_context io_;
  testing::CoroutineRunner run_{io_};
};

TEST_F(GuestBoundsTest, JunkFramesFromAGuestThatNeverReadsCloseTheChannelAfterTheLimit) {
  auto wire = testing::MakeGuestWire(io_);
  GuestChannelLimits limits;
  limits.max_protocol_errors = 16;
  GuestChannel channel(std::move(wire.host), "vm-junk", limits);
  std::optional<Error> closed_with;
  channel.OnClosed([&](const Error& error) { closed_with = error; });
  channel.Start();
  // 1000 junk frames; the guest reads none of the host's replies.
  std::string junk;
  for (int i = 0; i < 1000; ++i) junk += RawFrame("not json " + std::to_string(i));
  WriteAll(wire.peer, junk);
  run_.RunUntil([&] { return channel.closed(); }, 5s);
  ASSERT_TRUE(channel.closed());
  ASSERT_TRUE(closed_with.has_value());
  EXPECT_NE(closed_with->message.find("broke the protocol 16 times"), std::string::npos) << closed_with->message;

  auto ping = run_.Run(channel.Ping(1s));
  ASSERT_FALSE(ping.has_value());
  EXPECT_EQ(ping.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(ping.error().message.find("broke the protocol"), std::string::npos) << ping.error().message;
  ::close(wire.peer);
}

TEST_F(GuestBoundsTest, FewerJunkFramesThanTheLimitLeaveTheChannelWorking) {
  auto wire = testing::MakeGuestWire(io_);
  std::string junk;
  for (int i = 0; i < 15; ++i) junk += RawFrame("[1,2,3]");
  ReplyingGuest guest(wire.peer, junk);
  GuestChannel channel(std::move(wire.host), "vm-some-junk");
  channel.Start();
  auto ping = run_.Run(channel.Ping(5s));
  EXPECT_TRUE(ping.has_value()) << ping.error().ToString();
  run_.RunUntil([&] { return guest.error_codes().size() == 15; }, 5s);
  EXPECT_EQ(guest.error_codes().size(), 15u);
  EXPECT_FALSE(channel.closed());
}

TEST_F(GuestBoundsTest, AGuestThatStopsReadingCannotMakeTheHostQueueMoreThanTheCap) {
  auto wire = testing::MakeGuestWire(io_);
  GuestChannelLimits limits;
  limits.max_outbox_bytes = 256 * 1024;
  GuestChannel channel(std::move(wire.host), "vm-deaf", limits);
  std::optional<Error> closed_with;
  channel.OnClosed([&](const Error& error) { closed_with = error; });
  channel.Start();
  // 32 writes of 64 KiB each, 2 MiB in all: more than the socket buffer
  // and the cap together.
  std::vector<std::shared_ptr<std::optional<Result<void>>>> writes;
  for (int i = 0; i < 32; ++i) {
    writes.push_back(run_.Spawn(channel.WriteFile("/tmp/f" + std::to_string(i), std::string(64 * 1024, 'w'), 0644)));
  }
  run_.RunUntil([&] { return channel.closed(); }, 5s);
  ASSERT_TRUE(closed_with.has_value());
  EXPECT_NE(closed_with->message.find("the guest is not reading"), std::string::npos) << closed_with->message;
  EXPECT_NE(closed_with->message.find("cap of 262144"), std::string::npos) << closed_with->message;
  run_.RunUntil([&] {
    for (auto& w : writes) {
      if (!w->has_value()) return false;
    }
    return true;
  }, 5s);
  for (auto& w : writes) {
    ASSERT_TRUE(w->has_value());
    ASSERT_FALSE(w->value().has_value());
    EXPECT_EQ(w->value().error().code, ErrorCode::kUnavailable);
  }
  ::close(wire.peer);
}

TEST_F(GuestBoundsTest, AHugeHeaderIsRefusedAndTheChannelKeepsWorking) {
  auto wire = testing::MakeGuestWire(io_);
  const std::string huge = R"({"type":"pong","stream":1,"pad":")" + std::string(1 << 20, 'h') + "\"}";
  ReplyingGuest guest(wire.peer, RawFrame(huge));
  GuestChannel channel(std::move(wire.host), "vm-huge-header");
  channel.Start();
  run_.RunUntil([&] { return !guest.error_codes().empty(); }, 5s);
  ASSERT_EQ(guest.error_codes(), std::vector<std::string>{"too_large"});
  auto ping = run_.Run(channel.Ping(5s));
  EXPECT_TRUE(ping.has_value()) << ping.error().ToString();
}

TEST_F(GuestBoundsTest, ADeeplyNestedHeaderIsRefusedAndTheChannelKeepsWorking) {
  auto wire = testing::MakeGuestWire(io_);
  const int depth = 30000;  // within the header cap, far over the depth cap
  const std::string deep = R"({"type":"pong","stream":1,"x":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  ReplyingGuest guest(wire.peer, RawFrame(deep));
  GuestChannel channel(std::move(wire.host), "vm-deep");
  channel.Start();
  run_.RunUntil([&] { return !guest.error_codes().empty(); }, 5s);
  ASSERT_EQ(guest.error_codes(), std::vector<std::string>{"invalid_argument"});
  auto ping = run_.Run(channel.Ping(5s));
  EXPECT_TRUE(ping.has_value()) << ping.error().ToString();
}

TEST_F(GuestBoundsTest, LongGuestStringsAreCutAndTheirWarningsRateLimited) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto log = Logger("guest");
  log->sinks().push_back(sink);

  auto wire = testing::MakeGuestWire(io_);
  // 200 connection-level errors, each with a 30 KiB message (under the
  // header cap) and a newline that would forge a log line.
  const std::string message = "forged\n[error] root shell" + std::string(30 * 1024, 'm');
  std::string flood;
  for (int i = 0; i < 200; ++i) flood += protocol::EncodeFrame(protocol::ErrorFrame(0, "internal", message));
  ReplyingGuest guest(wire.peer, flood);
  GuestChannel channel(std::move(wire.host), "vm-chatty");
  channel.Start();
  auto ping = run_.Run(channel.Ping(5s));  // answered after the flood
  log->sinks().pop_back();
  ASSERT_TRUE(ping.has_value()) << ping.error().ToString();

  std::vector<std::string> lines;
  std::istringstream in(captured.str());
  for (std::string line; std::getline(in, line);) {
    if (line.find("vm-chatty") != std::string::npos && line.find("stream 0") != std::string::npos) lines.push_back(line);
  }
  EXPECT_GE(lines.size(), 1u);
  EXPECT_LE(lines.size(), 40u) << "warnings are not rate-limited";
  for (const auto& line : lines) {
    EXPECT_LT(line.size(), 1024u);
    EXPECT_NE(line.find("forged\\x0a[error]"), std::string::npos) << line;
  }
  EXPECT_EQ(captured.str().find("\n[error] root shell"), std::string::npos);
}

TEST(GuestLogTest, GuestTextIsCutAndEscaped) {
  EXPECT_EQ(GuestText("plain text"), "plain text");
  EXPECT_EQ(GuestText(std::string("a\nb\x1b[31m\\\xff", 10)), "a\\x0ab\\x1b[31m\\x5c\\xff");
  EXPECT_EQ(GuestText(std::string(500, 'x'), 8), "xxxxxxxx...(500 bytes)");
}

TEST(GuestLogTest, BudgetLetsABurstThroughPerIntervalAndCountsTheRest) {
  LogBudget budget(3, std::chrono::seconds(1));
  const auto t0 = LogBudget::Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(budget.Take(t0));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(budget.Take(t0 + std::chrono::milliseconds(500)));
  EXPECT_TRUE(budget.Take(t0 + std::chrono::seconds(1)));
  EXPECT_EQ(budget.suppressed(), 10u);
  EXPECT_TRUE(budget.Take(t0 + std::chrono::seconds(1)));
  EXPECT_EQ(budget.suppressed(), 0u);
}

}  // namespace
}  // namespace agentvm
