// GuestChannel against a scripted fake agent on a socketpair, and against the
// real agentvm-guest binary (--fd) for exec and files.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "protocol/messages.h"
#include "guest-images/agent/testing/agent_harness.h"
#include "supervisor/guest_channel.h"
#include "tests/support/coroutine_runner.h"
#include "tests/support/guest_wire.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
using guest::testing::AgentProcess;
using guest::testing::FrameClient;
namespace asio = boost::asio;

using Runner = testing::CoroutineRunner;

// A connected pair: the GuestChannel end and a raw fd for the fake agent.
using Wire = testing::GuestWire;
Wire MakeWire(asio::io_context& io) { return testing::MakeGuestWire(io); }

// A fake agent on its own thread: `script` gets every frame the host sends.
class FakeAgent {
 public:
  using Script = std::function<void(FrameClient&, const protocol::Frame&)>;
  FakeAgent(int fd, Script script, std::function<void(FrameClient&)> on_start = nullptr)
      : fd_(fd), thread_([this, script = std::move(script), on_start = std::move(on_start)] {
          FrameClient client(fd_);
          if (on_start) on_start(client);
          while (!stop_) {
            auto frame = client.Next(50ms);
            if (!frame) {
              if (client.closed()) break;
              continue;
            }
            script(client, *frame);
            received_.fetch_add(1);
          }
        }) {}
  ~FakeAgent() {
    stop_ = true;
    thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  void Close() { ::shutdown(fd_, SHUT_RDWR); }
  // Frames handled so far.
  int received() const { return received_.load(); }

 private:
  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<int> received_{0};
  std::thread thread_;
};

void Pong(FrameClient& c, const protocol::Frame& f) {
  if (f.type == protocol::kTypePing) c.Send(protocol::PongFrame(f.stream));
}

class GuestChannelFakeTest : public ::testing::Test {
 protected:
  asio::io_context io_;
  Runner run_{io_};
};

TEST_F(GuestChannelFakeTest, PingGetsPong) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, Pong);
  GuestChannel channel(std::move(wire.host), "vm-test");
  channel.Start();
  auto result = run_.Run(channel.Ping(5s));
  EXPECT_TRUE(result.has_value()) << result.error().ToString();
}

TEST_F(GuestChannelFakeTest, NeverAnsweringPeerTimesOutQuickly) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, [](FrameClient&, const protocol::Frame&) {});
  GuestChannel channel(std::move(wire.host), "vm-silent");
  channel.set_request_timeout(200ms);
  channel.set_exec_grace(100ms);
  channel.Start();

  auto start = std::chrono::steady_clock::now();
  auto ping = run_.Run(channel.Ping(100ms));
  ASSERT_FALSE(ping.has_value());
  EXPECT_EQ(ping.error().code, ErrorCode::kTimeout);
  EXPECT_NE(ping.error().message.find("did not answer within 100 ms"), std::string::npos)
      << ping.error().message;

  auto ready = run_.Run(channel.WaitReady(600ms));
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error().code, ErrorCode::kTimeout);

  protocol::ExecRequest request;
  request.argv = {"true"};
  request.timeout = 100ms;
  auto exec = run_.Run(channel.Exec(request, nullptr));
  ASSERT_FALSE(exec.has_value());
  EXPECT_EQ(exec.error().code, ErrorCode::kTimeout);

  auto write = run_.Run(channel.WriteFile("/tmp/x", "data", 0644));
  ASSERT_FALSE(write.has_value());
  EXPECT_EQ(write.error().code, ErrorCode::kTimeout);
  auto read = run_.Run(channel.ReadFile("/tmp/x", 100));
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kTimeout);

  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_FALSE(channel.closed());
}

TEST_F(GuestChannelFakeTest, ExecWhoseStartedNeverTurnsIntoAnExitTimesOutAfterTheGrace) {
  Wire wire = MakeWire(io_);
  std::atomic<int> kills{0};
  FakeAgent agent(wire.peer, [&](FrameClient& c, const protocol::Frame& f) {
    if (f.type == protocol::kTypeExec) c.Send(protocol::StartedFrame(f.stream, 42));
    if (f.type == protocol::kTypeSignal && protocol::ParseSignal(f).value_or(0) == SIGKILL) ++kills;
  });
  GuestChannel channel(std::move(wire.host), "vm-stuck");
  channel.set_exec_grace(200ms);
  channel.Start();
  protocol::ExecRequest request;
  request.argv = {"sleep", "100"};
  request.timeout = 100ms;
  auto start = std::chrono::steady_clock::now();
  auto exec = run_.Run(channel.Exec(request, nullptr));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(exec.has_value());
  EXPECT_EQ(exec.error().code, ErrorCode::kTimeout);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
  // The abandoned process is killed, best effort.
  run_.RunUntil([&] { return kills.load() > 0; }, 5s);
  EXPECT_EQ(kills.load(), 1);
}

TEST_F(GuestChannelFakeTest, PeerClosingFailsPendingAndLaterCallsWithUnavailable) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, [](FrameClient&, const protocol::Frame&) {});
  GuestChannel channel(std::move(wire.host), "vm-gone");
  int closed_calls = 0;
  Error closed_error;
  channel.OnClosed([&](const Error& e) {
    ++closed_calls;
    closed_error = e;
  });
  channel.Start();
  protocol::ExecRequest request;
  request.argv = {"sleep", "100"};
  auto exec = run_.Spawn(channel.Exec(request, nullptr));
  run_.RunUntil([&] { return agent.received() >= 1; }, 5s);
  agent.Close();
  run_.RunUntil([&] { return exec->has_value(); }, 5s);
  ASSERT_TRUE(exec->has_value());
  ASSERT_FALSE(exec->value().has_value());
  EXPECT_EQ(exec->value().error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(channel.closed());
  EXPECT_EQ(closed_calls, 1);
  EXPECT_EQ(closed_error.code, ErrorCode::kUnavailable);

  auto ping = run_.Run(channel.Ping(5s));
  ASSERT_FALSE(ping.has_value());
  EXPECT_EQ(ping.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(closed_calls, 1);
}

TEST_F(GuestChannelFakeTest, DestroyingTheChannelCompletesPendingCalls) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, [](FrameClient&, const protocol::Frame&) {});
  auto channel = std::make_unique<GuestChannel>(std::move(wire.host), "vm-destroyed");
  bool callback_ran = false;
  channel->OnClosed([&](const Error&) { callback_ran = true; });
  channel->Start();
  auto ping = run_.Spawn(channel->Ping(30s));
  run_.RunUntil([&] { return agent.received() >= 1; }, 5s);
  channel.reset();
  run_.RunUntil([&] { return ping->has_value(); }, 5s);
  ASSERT_TRUE(ping->has_value());
  ASSERT_FALSE(ping->value().has_value());
  EXPECT_EQ(ping->value().error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(callback_ran);
}

TEST_F(GuestChannelFakeTest, OversizedFrameFromThePeerIsDiscardedAndLaterCallsWork) {
  Wire wire = MakeWire(io_);
  auto send_junk = [](FrameClient& c) {
    const std::uint32_t payload = protocol::kMaxFrameBytes + 1;
    std::string header = R"({"type":"stdout","stream":1})";
    std::string prefix;
    for (std::uint32_t v : {static_cast<std::uint32_t>(header.size()), payload}) {
      for (int shift : {24, 16, 8, 0}) prefix.push_back(static_cast<char>(v >> shift));
    }
    c.SendRaw(prefix + header);
    c.SendRaw(std::string(payload, 'j'));
  };
  FakeAgent agent(wire.peer, Pong, send_junk);
  GuestChannel channel(std::move(wire.host), "vm-junk");
  channel.Start();
  for (int i = 0; i < 3; ++i) {
    auto ping = run_.Run(channel.Ping(10s));
    EXPECT_TRUE(ping.has_value()) << ping.error().ToString();
  }
  EXPECT_FALSE(channel.closed());
}

TEST_F(GuestChannelFakeTest, TheHostTellsThePeerAboutAnOversizedFrame) {
  Wire wire = MakeWire(io_);
  std::atomic<bool> got_error{false};
  std::string code;
  FakeAgent agent(
      wire.peer,
      [&](FrameClient&, const protocol::Frame& f) {
        if (f.type == protocol::kTypeError && f.stream == 0) {
          code = protocol::ParseError(f)->code;
          got_error = true;
        }
      },
      [](FrameClient& c) { c.SendRaw(std::string("\xff\xff\xff\xff\0\0\0\0", 8)); });
  GuestChannel channel(std::move(wire.host), "vm-junk2");
  channel.Start();
  run_.RunUntil([&] { return got_error.load(); }, 5s);
  ASSERT_TRUE(got_error);
  EXPECT_EQ(code, "too_large");
}

TEST_F(GuestChannelFakeTest, LateRepliesAreDroppedAndTheChannelKeepsWorking) {
  Wire wire = MakeWire(io_);
  std::atomic<int> pings{0};
  FakeAgent agent(wire.peer, [&](FrameClient& c, const protocol::Frame& f) {
    if (f.type != protocol::kTypePing) return;
    if (pings.fetch_add(1) == 0) std::this_thread::sleep_for(300ms);  // too late for the first
    c.Send(protocol::PongFrame(f.stream));
  });
  GuestChannel channel(std::move(wire.host), "vm-slow");
  channel.Start();
  auto first = run_.Run(channel.Ping(100ms));
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().code, ErrorCode::kTimeout);
  auto second = run_.Run(channel.Ping(5s));
  EXPECT_TRUE(second.has_value()) << second.error().ToString();
}

TEST_F(GuestChannelFakeTest, WaitReadyAcceptsAPongToAnEarlierPing) {
  Wire wire = MakeWire(io_);
  // Each pong takes 400 ms, longer than WaitReady's ping interval.
  FakeAgent agent(wire.peer, [](FrameClient& c, const protocol::Frame& f) {
    if (f.type != protocol::kTypePing) return;
    std::this_thread::sleep_for(400ms);
    c.Send(protocol::PongFrame(f.stream));
  });
  GuestChannel channel(std::move(wire.host), "vm-tcg");
  channel.Start();
  auto ready = run_.Run(channel.WaitReady(5s));
  EXPECT_TRUE(ready.has_value()) << ready.error().ToString();
}

TEST_F(GuestChannelFakeTest, GuestErrorsKeepTheirCodeAndMessage) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, [](FrameClient& c, const protocol::Frame& f) {
    if (f.type == protocol::kTypeExec) {
      c.Send(protocol::ErrorFrame(f.stream, "not_found", "exec nope: No such file or directory"));
    } else if (f.type == protocol::kTypeReadFile) {
      c.Send(protocol::ErrorFrame(f.stream, "something_new", "odd"));
    }
  });
  GuestChannel channel(std::move(wire.host), "vm-errors");
  channel.Start();
  protocol::ExecRequest request;
  request.argv = {"nope"};
  auto exec = run_.Run(channel.Exec(request, nullptr));
  ASSERT_FALSE(exec.has_value());
  EXPECT_EQ(exec.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(exec.error().message, "exec nope: No such file or directory");
  auto read = run_.Run(channel.ReadFile("/x", 10));
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kInternal);
}

TEST_F(GuestChannelFakeTest, ARequestOverTheFrameLimitIsRefusedLocally) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, Pong);
  GuestChannel channel(std::move(wire.host), "vm-big");
  channel.Start();
  protocol::ExecRequest request;
  request.argv = {"echo", std::string(protocol::kMaxFrameBytes, 'x')};
  auto exec = run_.Run(channel.Exec(request, nullptr));
  ASSERT_FALSE(exec.has_value());
  EXPECT_EQ(exec.error().code, ErrorCode::kTooLarge);
  auto ping = run_.Run(channel.Ping(5s));
  EXPECT_TRUE(ping.has_value()) << ping.error().ToString();
}

TEST_F(GuestChannelFakeTest, ConfigureFillsInTheClockAndFreshEntropy) {
  Wire wire = MakeWire(io_);
  std::vector<protocol::Frame> seen;
  std::mutex mutex;
  FakeAgent agent(wire.peer, [&](FrameClient& c, const protocol::Frame& f) {
    if (f.type != protocol::kTypeConfigure) return;
    {
      std::lock_guard lock(mutex);
      seen.push_back(f);
    }
    c.Send(protocol::OkFrame(f.stream));
  });
  GuestChannel channel(std::move(wire.host), "vm-identity");
  channel.Start();

  GuestIdentity identity;
  identity.hostname = "clone-1";
  identity.network = GuestNetwork{"10.101.0.5/16", "10.101.0.1", "10.101.0.1", "02:00:0a:65:00:05"};
  auto before = std::chrono::system_clock::now();
  auto first = run_.Run(channel.Configure(identity, 5s));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  auto second = run_.Run(channel.Configure(identity, 5s));
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  auto after = std::chrono::system_clock::now();

  std::lock_guard lock(mutex);
  ASSERT_EQ(seen.size(), 2u);
  auto parsed = protocol::ParseConfigure(seen[0]);
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  EXPECT_EQ(parsed->hostname, "clone-1");
  EXPECT_EQ(parsed->network->address, "10.101.0.5/16");
  EXPECT_EQ(parsed->network->mac, "02:00:0a:65:00:05");
  ASSERT_TRUE(parsed->time_unix_ns);
  auto ns = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  EXPECT_GE(*parsed->time_unix_ns, ns(before));
  EXPECT_LE(*parsed->time_unix_ns, ns(after));
  EXPECT_EQ(parsed->entropy.size(), kConfigureEntropyBytes);
  EXPECT_NE(parsed->entropy, std::string(kConfigureEntropyBytes, '\0'));
  // Each call draws its own bytes: two clones never get the same seed.
  EXPECT_NE(seen[1].payload, seen[0].payload);
}

TEST_F(GuestChannelFakeTest, ConfigureKeepsWhatTheCallerGave) {
  Wire wire = MakeWire(io_);
  std::optional<protocol::Frame> seen;
  std::mutex mutex;
  FakeAgent agent(wire.peer, [&](FrameClient& c, const protocol::Frame& f) {
    {
      std::lock_guard lock(mutex);
      seen = f;
    }
    c.Send(protocol::OkFrame(f.stream));
  });
  GuestChannel channel(std::move(wire.host), "vm-identity");
  channel.Start();
  GuestIdentity identity;
  identity.time_unix_ns = 1893456000000000000;
  identity.entropy = "caller's own bytes";
  ASSERT_TRUE(run_.Run(channel.Configure(identity, 5s)).has_value());
  std::lock_guard lock(mutex);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->header["time_unix_ns"], 1893456000000000000);
  EXPECT_EQ(seen->payload, "caller's own bytes");
  EXPECT_FALSE(seen->header.contains("network"));
  EXPECT_FALSE(seen->header.contains("hostname"));
}

TEST_F(GuestChannelFakeTest, ConfigureRefusesABadIdentityWithoutSendingIt) {
  Wire wire = MakeWire(io_);
  FakeAgent agent(wire.peer, Pong);
  GuestChannel channel(std::move(wire.host), "vm-identity");
  channel.Start();
  GuestIdentity identity;
  identity.hostname = "a/b";
  auto result = run_.Run(channel.Configure(identity, 5s));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.error().message,
            "configure: hostname \"a/b\": only letters, digits, '-' and '.' allowed");
  identity.hostname.reset();
  identity.entropy = std::string(protocol::kMaxEntropyBytes + 1, 'x');
  result = run_.Run(channel.Configure(identity, 5s));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(run_.Run(channel.Ping(5s)).has_value());
  EXPECT_EQ(agent.received(), 1);  // only the ping
}

TEST_F(GuestChannelFakeTest, ConfigureErrorsAndTimeoutsComeBack) {
  Wire wire = MakeWire(io_);
  std::atomic<int> calls{0};
  FakeAgent agent(wire.peer, [&](FrameClient& c, const protocol::Frame& f) {
    if (f.type != protocol::kTypeConfigure) return;
    if (calls.fetch_add(1) == 0) {
      c.Send(protocol::ErrorFrame(f.stream, "internal",
                                  "configure: network: ip link set dev eth0 up: exit status 2"));
    }  // the second is never answered
  });
  GuestChannel channel(std::move(wire.host), "vm-identity");
  channel.Start();
  auto failed = run_.Run(channel.Configure(GuestIdentity{}, 5s));
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kInternal);
  EXPECT_EQ(failed.error().message, "configure: network: ip link set dev eth0 up: exit status 2");
  auto silent = run_.Run(channel.Configure(GuestIdentity{}, 200ms));
  ASSERT_FALSE(silent.has_value());
  EXPECT_EQ(silent.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(silent.error().message, "configure: the guest agent did not answer within 200 ms");
}

TEST(GuestChannelErrorCodeTest, EveryCodeMapsBackFromItsName) {
  for (ErrorCode code : kAllErrorCodes) EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(code)), code);
  // The protocol library spells the same names without depending on common/.
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInvalidArgument), protocol::kCodeInvalidArgument);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotFound), protocol::kCodeNotFound);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kConflict), protocol::kCodeConflict);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kTimeout), protocol::kCodeTimeout);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kUnavailable), protocol::kCodeUnavailable);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kTooLarge), protocol::kCodeTooLarge);
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInternal), protocol::kCodeInternal);
  EXPECT_EQ(ErrorCodeFromName("no_such_code"), ErrorCode::kInternal);
}

// --- against the real agent -------------------------------------------------

class GuestChannelAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    agent_ = AgentProcess::Start({}, &error);
    ASSERT_NE(agent_, nullptr) << error;
    int fd = agent_->TakeHostFd().release();
    channel_ = std::make_unique<GuestChannel>(
        GuestChannel::Socket(io_, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fd),
        "vm-real");
    channel_->Start();
    char tmpl[] = "/tmp/agentvm-channel-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    channel_.reset();
    agent_.reset();
    std::filesystem::remove_all(dir_);
  }

  asio::io_context io_;
  Runner run_{io_};
  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<GuestChannel> channel_;
  std::string dir_;
};

struct Captured {
  std::string out;
  std::string err;
  protocol::OutputSink Sink() {
    return [this](protocol::OutputStream which, std::string_view data) {
      (which == protocol::OutputStream::kStdout ? out : err).append(data);
    };
  }
};

TEST_F(GuestChannelAgentTest, ExecStreamsOutputAndReportsTheExitCode) {
  ASSERT_TRUE(run_.Run(channel_->WaitReady(10s)).has_value());
  Captured captured;
  protocol::ExecRequest request;
  request.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 7"};
  auto result = run_.Run(channel_->Exec(request, captured.Sink()));
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->exit_code, 7);
  EXPECT_EQ(result->ShellStatus(), 7);
  EXPECT_EQ(captured.out, "out\n");
  EXPECT_EQ(captured.err, "err\n");
}

TEST_F(GuestChannelAgentTest, ASlowConsumerGetsEveryByteWhileTheGuestWaitsForIt) {
  constexpr std::uint64_t kWindow = 64 * 1024;
  channel_->set_output_window(kWindow);
  protocol::ExecRequest request;
  request.argv = {"seq", "1", "300000"};  // about 2 MB
  auto exec = run_.Run(channel_->StartExec(request));
  ASSERT_TRUE(exec.has_value()) << exec.error().ToString();
  std::string out;
  std::uint64_t most_queued = 0;
  int takes = 0;
  while (true) {
    most_queued = std::max(most_queued, (*exec)->queued_bytes());
    auto chunk = run_.Run((*exec)->NextOutput());
    if (!chunk) break;
    out += chunk->data;
    // A reader that dawdles now and then, as a throttled pipe does.
    if (++takes % 8 == 0) run_.RunFor(5ms);
  }
  ASSERT_TRUE((*exec)->result().has_value()) << (*exec)->result().error().ToString();
  EXPECT_EQ((*exec)->result()->exit_code, 0);
  std::string expected;
  for (int i = 1; i <= 300000; ++i) expected += std::to_string(i) + "\n";
  EXPECT_EQ(out.size(), expected.size());
  EXPECT_TRUE(out == expected);
  EXPECT_LE(most_queued, kWindow);
}

TEST_F(GuestChannelAgentTest, StdinStreamsThroughTheWindowAndClosesOnEof) {
  protocol::ExecRequest request;
  request.argv = {"sha256sum"};
  request.stream_stdin = true;
  auto exec = run_.Run(channel_->StartExec(request));
  ASSERT_TRUE(exec.has_value()) << exec.error().ToString();
  // 5 MB, five times the guest's stdin window, in uneven writes.
  std::string input(5 * 1000 * 1000, '\0');
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>((i * 131) >> 3);
  for (std::size_t offset = 0; offset < input.size(); offset += 700 * 1000) {
    bool last = offset + 700 * 1000 >= input.size();
    auto sent = run_.Run((*exec)->WriteStdin(input.substr(offset, 700 * 1000), last));
    ASSERT_TRUE(sent.has_value()) << sent.error().ToString();
  }
  std::string out;
  while (auto chunk = run_.Run((*exec)->NextOutput())) out += chunk->data;
  ASSERT_TRUE((*exec)->result().has_value());
  // The same sum as the host's own sha256sum of those bytes.
  std::string path = dir_ + "/input";
  std::ofstream(path, std::ios::binary) << input;
  FILE* pipe = ::popen(("sha256sum < " + path).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buf[128] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, pipe), nullptr);
  ::pclose(pipe);
  EXPECT_EQ(out, std::string(buf));
}

TEST_F(GuestChannelAgentTest, ExecTimeoutIsAResultNotAnError) {
  protocol::ExecRequest request;
  request.argv = {"sleep", "30"};
  request.timeout = 300ms;
  auto result = run_.Run(channel_->Exec(request, nullptr));
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_TRUE(result->timed_out);
  EXPECT_EQ(result->ShellStatus(), 124);
}

TEST_F(GuestChannelAgentTest, ExecOfAMissingProgramIsNotFound) {
  protocol::ExecRequest request;
  request.argv = {"nope"};
  auto result = run_.Run(channel_->Exec(request, nullptr));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(result.error().message, "exec nope: No such file or directory");
}

TEST_F(GuestChannelAgentTest, ConcurrentExecsAndLargeStdin) {
  std::string input(2 * 1024 * 1024 + 12345, '\0');
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>(i * 7);
  Captured a, b;
  protocol::ExecRequest cat;
  cat.argv = {"cat"};
  cat.stdin_data = input;
  protocol::ExecRequest sleeper;
  sleeper.argv = {"/bin/sh", "-c", "sleep 0.3; echo slept"};
  auto first = run_.Spawn(channel_->Exec(sleeper, b.Sink()));
  auto second = run_.Spawn(channel_->Exec(cat, a.Sink()));
  run_.RunUntil([&] { return first->has_value() && second->has_value(); });
  ASSERT_TRUE(first->has_value() && second->has_value());
  ASSERT_TRUE(first->value().has_value()) << first->value().error().ToString();
  ASSERT_TRUE(second->value().has_value()) << second->value().error().ToString();
  EXPECT_EQ(a.out.size(), input.size());
  EXPECT_TRUE(a.out == input);
  EXPECT_EQ(b.out, "slept\n");
}

TEST_F(GuestChannelAgentTest, FilesRoundTrip) {
  std::string data(3 * 1024 * 1024 + 5, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) >> 3);
  std::string path = dir_ + "/blob";
  auto written = run_.Run(channel_->WriteFile(path, data, 0640));
  ASSERT_TRUE(written.has_value()) << written.error().ToString();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), data.size());
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  auto read = run_.Run(channel_->ReadFile(path, data.size()));
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_TRUE(*read == data);

  auto small = run_.Run(channel_->WriteFile(path, "tiny", 0600));
  ASSERT_TRUE(small.has_value());
  auto tiny = run_.Run(channel_->ReadFile(path, 4));
  ASSERT_TRUE(tiny.has_value());
  EXPECT_EQ(*tiny, "tiny");
  auto empty = run_.Run(channel_->WriteFile(dir_ + "/empty", "", 0644));
  ASSERT_TRUE(empty.has_value());
  auto nothing = run_.Run(channel_->ReadFile(dir_ + "/empty", 10));
  ASSERT_TRUE(nothing.has_value());
  EXPECT_EQ(*nothing, "");
}

TEST_F(GuestChannelAgentTest, FileErrors) {
  std::string path = dir_ + "/five";
  ASSERT_TRUE(run_.Run(channel_->WriteFile(path, "12345", 0644)).has_value());
  auto too_big = run_.Run(channel_->ReadFile(path, 4));
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code, ErrorCode::kTooLarge);

  auto dir = run_.Run(channel_->ReadFile(dir_, 100));
  ASSERT_FALSE(dir.has_value());
  EXPECT_EQ(dir.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(dir.error().message, dir_ + ": is a directory");

  auto missing = run_.Run(channel_->ReadFile(dir_ + "/missing", 100));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);

  auto relative = run_.Run(channel_->WriteFile("relative/path", "x", 0644));
  ASSERT_FALSE(relative.has_value());
  EXPECT_EQ(relative.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(GuestChannelAgentTest, ConfigureIsRefusedByAnAgentThatMustNotTouchItsHost) {
  GuestIdentity identity;
  identity.hostname = "not-this-host";
  auto result = run_.Run(channel_->Configure(identity, 5s));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable);
}

TEST(GuestChannelConfigureAgentTest, TheRealAgentAppliesTheIdentity) {
  char tmpl[] = "/tmp/agentvm-channel-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::string record = dir + "/actions";
  {
    std::string error;
    auto agent = AgentProcess::Start({"--dry-run-system", record}, &error);
    ASSERT_NE(agent, nullptr) << error;
    asio::io_context io;
    Runner run(io);
    GuestChannel channel(
        GuestChannel::Socket(io, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM),
                             agent->TakeHostFd().release()),
        "vm-real");
    channel.Start();
    GuestIdentity identity;
    identity.hostname = "clone-9";
    identity.time_unix_ns = 1893456000000000000;
    identity.network = GuestNetwork{"10.101.3.4/16", "10.101.0.1", "10.101.0.1", {}};
    auto result = run.Run(channel.Configure(identity, 5s));
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
  }
  std::ifstream in(record);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0], "clock 1893456000000000000");
  // 64 bytes from the host's getrandom(), hex-encoded in the record.
  EXPECT_EQ(lines[1].rfind("entropy 64 ", 0), 0u) << lines[1];
  EXPECT_EQ(lines[1].size(), std::string("entropy 64 ").size() + 128);
  EXPECT_EQ(lines[2], "hostname clone-9");
  EXPECT_EQ(lines[3], "ip link set dev eth0 up");
  EXPECT_EQ(lines[4], "ip -4 addr flush dev eth0");
  EXPECT_EQ(lines[5], "ip addr add 10.101.3.4/16 dev eth0");
  EXPECT_EQ(lines[6], "ip route replace default via 10.101.0.1 dev eth0");
  EXPECT_EQ(lines[7], "resolv.conf nameserver 10.101.0.1\\n");
}

TEST_F(GuestChannelAgentTest, ShutdownInFdModeMakesTheAgentExit) {
  auto result = run_.Run(channel_->Shutdown(5s));
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(agent_->WaitExit(5s), 0);
  run_.RunUntil([&] { return channel_->closed(); }, 5s);
  EXPECT_TRUE(channel_->closed());
}

}  // namespace
}  // namespace agentvm
