// The agent's behaviour as a protocol peer: refused frames, shutdown in --fd
// mode, the channel going away, and how it finds its channel in a guest.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "guest-images/agent/agent.h"
#include "guest-images/agent/channel.h"
#include "guest-images/agent/output_queue.h"
#include "protocol/messages.h"
#include "guest-images/agent/testing/agent_harness.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using testing::AgentProcess;
using testing::AgentTestBase;
using testing::FrameClient;

std::string Prefix(std::uint32_t header_len, std::uint32_t payload_len) {
  std::string p;
  for (std::uint32_t v : {header_len, payload_len}) {
    for (int shift : {24, 16, 8, 0}) p.push_back(static_cast<char>(v >> shift));
  }
  return p;
}

class AgentConnectionTest : public AgentTestBase {
 protected:
  void ExpectPong(std::uint32_t stream) {
    ASSERT_TRUE(client_->Send(protocol::PingFrame(stream)));
    auto frames = client_->Collect(stream, 10s);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].type, protocol::kTypePong);
    EXPECT_EQ(protocol::ParsePong(frames[0]).value(), protocol::kProtocolVersion);
  }
};

TEST_F(AgentConnectionTest, AnswersPing) { ExpectPong(1); }

TEST_F(AgentConnectionTest, OversizedFrameIsRefusedDiscardedAndTheNextPingWorks) {
  const std::uint32_t payload = protocol::kMaxFrameBytes + 1;
  std::string header = R"({"type":"write_file","stream":2,"path":"/tmp/never"})";
  ASSERT_TRUE(
      client_->SendRaw(Prefix(static_cast<std::uint32_t>(header.size()), payload) + header));
  ASSERT_TRUE(client_->SendRaw(std::string(payload, 'z')));
  auto frames = client_->Collect(0, 10s);
  ASSERT_EQ(frames.size(), 1u);
  auto error = protocol::ParseError(frames[0]);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "too_large");
  EXPECT_NE(error->message.find("16777216"), std::string::npos) << error->message;
  ExpectPong(3);
}

TEST_F(AgentConnectionTest, UnparsableHeaderIsRefusedAndTheNextPingWorks) {
  std::string header = "{this is not json";
  ASSERT_TRUE(
      client_->SendRaw(Prefix(static_cast<std::uint32_t>(header.size()), 4) + header + "abcd"));
  auto frames = client_->Collect(0, 10s);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(protocol::ParseError(frames[0])->code, "invalid_argument");
  ExpectPong(4);
}

TEST_F(AgentConnectionTest, UnknownRequestTypeIsAnErrorOnItsStream) {
  ASSERT_TRUE(client_->Send(protocol::MakeFrame("teleport", 5)));
  auto frames = client_->Collect(5, 10s);
  ASSERT_EQ(frames.size(), 1u);
  auto error = protocol::ParseError(frames[0]);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "invalid_argument");
  EXPECT_EQ(error->message, "unknown request type \"teleport\"");
}

TEST_F(AgentConnectionTest, ErrorsFromTheHostAreNeverAnswered) {
  ASSERT_TRUE(client_->Send(protocol::ErrorFrame(0, "too_large", "your frame was too big")));
  ASSERT_TRUE(client_->Send(protocol::PingFrame(6)));
  auto next = client_->Next(10s);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->type, protocol::kTypePong);
  EXPECT_EQ(next->stream, 6u);
}

TEST_F(AgentConnectionTest, ShutdownInFdModeRepliesOkAndExitsZero) {
  ASSERT_TRUE(client_->Send(protocol::ShutdownFrame(7)));
  auto frames = client_->Collect(7, 10s);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, protocol::kTypeOk);
  EXPECT_EQ(agent_->WaitExit(5s), 0);
}

TEST_F(AgentConnectionTest, ClosingTheChannelEndsTheAgentAndItsProcesses) {
  protocol::ExecRequest request;
  request.argv = {"/bin/sh", "-c", "echo $$; exec sleep 100"};
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(8, request, "", true)));
  std::string out;
  while (out.find('\n') == std::string::npos) {
    auto frame = client_->Next(10s);
    ASSERT_TRUE(frame.has_value());
    if (frame->type == protocol::kTypeStdout) out += frame->payload;
  }
  pid_t child = std::stoi(out);
  agent_->CloseHostFd();
  EXPECT_EQ(agent_->WaitExit(5s), 0);
  EXPECT_TRUE(testing::ProcessGone(child));
}

TEST(AgentBinaryTest, HelpDocumentsEveryFlag) {
  std::string binary = testing::AgentBinaryPath();
  FILE* pipe = ::popen((binary + " --help").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string help;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) help.append(buf, n);
  EXPECT_EQ(::pclose(pipe), 0);
  for (const char* flag :
       {"--fd", "--serial", "--vsock-port", "--allow-poweroff", "--dry-run-system",
        "--dry-run-fail", "agentvm.channel", "agentvm.0", "1024"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

TEST(AgentBinaryTest, RejectsConflictingChannels) {
  std::string binary = testing::AgentBinaryPath();
  int status = std::system((binary + " --fd 0 --vsock-port 1024 2>/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

// A virtio-serial port whose host end is not connected reports POLLHUP and
// read()==0 on every poll. The agent must keep the port and wait, not exit
// and not spin. A socketpair whose peer closed behaves the same way.
TEST(AgentSerialTest, WaitsWithoutSpinningWhileTheHostIsAway) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(sv[0]);
    Agent agent(Channel{ChannelKind::kSerial, UniqueFd(sv[1]), "test serial"}, AgentOptions{});
    ::_exit(agent.Run() == 0 ? 10 : 11);
  }
  ::close(sv[1]);
  {
    FrameClient client(sv[0]);
    ASSERT_TRUE(client.Send(protocol::PingFrame(1)));
    auto pong = client.Next(10s);
    ASSERT_TRUE(pong.has_value());
    EXPECT_EQ(pong->type, protocol::kTypePong);
  }
  ::close(sv[0]);
  std::this_thread::sleep_for(200ms);
  long before = testing::CpuTicks(pid);
  std::this_thread::sleep_for(1s);
  long after = testing::CpuTicks(pid);
  int status;
  EXPECT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "the agent exited";
  long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  EXPECT_LT(after - before, ticks_per_second / 10) << "the agent spins";
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

// Flushes `queue` into `out` until it is empty, as the agent's poll loop
// would, and returns the first `count` frames read from `in`.
std::vector<protocol::Frame> FlushAndRead(OutputQueue& queue, int out, int in, std::size_t count) {
  FrameClient client(in);
  std::thread drain([&queue, out] {
    while (!queue.empty()) {
      ASSERT_EQ(queue.Flush(out), 0);
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<protocol::Frame> frames;
  while (frames.size() < count) {
    auto frame = client.Next(5s);
    if (!frame) break;
    frames.push_back(std::move(*frame));
  }
  drain.join();
  return frames;
}

// A nonblocking socketpair whose sv[0] takes about 4 KiB at a time, so a
// flush into it stops part way.
void TinySendBufferPair(int sv[2]) {
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  int small = 4096;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
}

TEST(OutputQueueTest, AccountsQueuedBytesPerStreamUntilWritten) {
  OutputQueue queue;
  queue.Push(protocol::OutputFrame(1, protocol::OutputStream::kStdout, std::string(100000, 'a')));
  queue.Push(protocol::OutputFrame(2, protocol::OutputStream::kStdout, "b"));
  EXPECT_GT(queue.stream_bytes(1), 100000u);
  EXPECT_GT(queue.stream_bytes(2), 1u);
  EXPECT_EQ(queue.total_bytes(), queue.stream_bytes(1) + queue.stream_bytes(2));

  int sv[2];
  TinySendBufferPair(sv);
  EXPECT_EQ(queue.Flush(sv[0]), 0);  // partial: the socket is full
  EXPECT_FALSE(queue.empty());
  EXPECT_LT(queue.stream_bytes(1), 100000u);

  auto frames = FlushAndRead(queue, sv[0], sv[1], 2);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload.size(), 100000u);
  EXPECT_EQ(frames[1].payload, "b");
  EXPECT_EQ(queue.total_bytes(), 0u);
  EXPECT_EQ(queue.stream_bytes(1), 0u);
  ::close(sv[0]);
  ::close(sv[1]);
}

// Small frames in a row are copied into one write (a virtio port takes
// each element of a writev as a write, a ring buffer and a host
// notification of its own); between large ones, and cut short by a full
// socket, every frame still arrives whole and in order.
TEST(OutputQueueTest, SmallFramesLeaveTogetherAndAllArriveInOrder) {
  using protocol::OutputStream;
  OutputQueue queue;
  protocol::ExecResult exited;
  exited.exit_code = 3;
  queue.Push(protocol::StartedFrame(1, 42));
  queue.Push(protocol::OutputFrame(1, OutputStream::kStdout, "a"));
  queue.Push(protocol::OutputFrame(1, OutputStream::kStdout, std::string(200000, 'b')));
  queue.Push(protocol::OutputFrame(2, OutputStream::kStderr, "c"));
  queue.Push(protocol::ExitFrame(1, exited));

  int sv[2];
  TinySendBufferPair(sv);
  EXPECT_EQ(queue.Flush(sv[0]), 0);  // partial: the socket is full
  EXPECT_FALSE(queue.empty());

  auto frames = FlushAndRead(queue, sv[0], sv[1], 5);
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_EQ(frames[0].type, protocol::kTypeStarted);
  EXPECT_EQ(frames[1].payload, "a");
  EXPECT_EQ(frames[2].payload, std::string(200000, 'b'));
  EXPECT_EQ(frames[3].stream, 2u);
  EXPECT_EQ(frames[3].payload, "c");
  ASSERT_EQ(frames[4].type, protocol::kTypeExit);
  EXPECT_EQ(protocol::ParseExit(frames[4])->exit_code, 3);
  EXPECT_EQ(queue.total_bytes(), 0u);
  EXPECT_EQ(queue.stream_bytes(1), 0u);
  ::close(sv[0]);
  ::close(sv[1]);
}

// A payload read into a buffer's headroom leaves as the same bytes on the
// wire as the frame Push() encodes, and only the frame counts as queued.
TEST(OutputQueueTest, AFrameBuiltInItsBuffersHeadroomEncodesLikeAnyOther) {
  const std::string payload(300000, 'p');
  OutputQueue queue;
  std::string buffer(OutputQueue::kHeadroom, '\0');
  buffer += payload;
  queue.PushWithHeadroom(protocol::DataFrame(5, protocol::FileData{payload.size(), 0640, true}, {}),
                         std::move(buffer));
  queue.Push(protocol::DataFrame(5, protocol::FileData{payload.size(), 0640, true}, payload));
  EXPECT_EQ(queue.stream_bytes(5), 2 * protocol::EncodeFrame(protocol::DataFrame(
                                           5, protocol::FileData{payload.size(), 0640, true}, payload))
                                           .size());

  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  auto frames = FlushAndRead(queue, sv[0], sv[1], 2);
  ASSERT_EQ(frames.size(), 2u);  // the one built in its buffer, then the one Push() encoded
  EXPECT_EQ(frames[0].header, frames[1].header);
  EXPECT_EQ(frames[0].payload, payload);
  EXPECT_EQ(frames[1].payload, payload);
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(ChannelTest, CmdlineValue) {
  std::string cmdline = "console=ttyS0 root=/dev/vda agentvm.channel=serial quiet\n";
  EXPECT_EQ(CmdlineValue(cmdline, "agentvm.channel"), "serial");
  EXPECT_EQ(CmdlineValue(cmdline, "root"), "/dev/vda");
  EXPECT_EQ(CmdlineValue(cmdline, "agentvm"), std::nullopt);
  EXPECT_EQ(CmdlineValue(cmdline, "quiet"), std::nullopt);
  EXPECT_EQ(CmdlineValue("agentvm.channel=serial agentvm.channel=vsock", "agentvm.channel"),
            "vsock");
  EXPECT_EQ(CmdlineValue("", "agentvm.channel"), std::nullopt);
}

class FakeSysfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/agentvm-sysfs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    paths_.cmdline = root_ + "/cmdline";
    paths_.virtio_ports = root_ + "/virtio-ports";
    std::filesystem::create_directories(paths_.virtio_ports);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void AddPort(const std::string& port, const std::string& name) {
    std::filesystem::create_directories(paths_.virtio_ports + "/" + port);
    std::ofstream(paths_.virtio_ports + "/" + port + "/name") << name << "\n";
  }
  void SetCmdline(const std::string& text) { std::ofstream(paths_.cmdline) << text << "\n"; }

  std::string root_;
  DiscoveryPaths paths_;
};

TEST_F(FakeSysfsTest, FindsThePortByName) {
  AddPort("vport0p0", "org.qemu.guest_agent.0");
  AddPort("vport0p1", "agentvm.0");
  EXPECT_EQ(FindVirtioPort(paths_.virtio_ports, "agentvm.0"), "/dev/vport0p1");
  EXPECT_EQ(FindVirtioPort(paths_.virtio_ports, "other"), std::nullopt);
  EXPECT_EQ(FindVirtioPort(root_ + "/nowhere", "agentvm.0"), std::nullopt);
}

TEST_F(FakeSysfsTest, DiscoveryRefusesAnUnknownChannelKind) {
  SetCmdline("agentvm.channel=carrier-pigeon");
  auto channel = DiscoverChannel(paths_, 5s);
  ASSERT_FALSE(channel.has_value());
  EXPECT_NE(channel.error().find("carrier-pigeon"), std::string::npos);
}

TEST_F(FakeSysfsTest, DiscoveryGivesUpWithAReasonWhenThePortNeverAppears) {
  SetCmdline("console=ttyS0 agentvm.channel=serial");
  auto start = std::chrono::steady_clock::now();
  auto channel = DiscoverChannel(paths_, 300ms);
  ASSERT_FALSE(channel.has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_NE(channel.error().find("agentvm.0"), std::string::npos) << channel.error();
}

TEST(ChannelTest, ListensOnVsockWhereTheHostSupportsIt) {
  int probe = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  if (probe < 0) GTEST_SKIP() << "no AF_VSOCK on this host";
  ::close(probe);
  auto fd = ListenVsock(40000 + static_cast<std::uint32_t>(::getpid() % 20000));
  ASSERT_TRUE(fd.has_value()) << fd.error();
  EXPECT_TRUE(static_cast<bool>(*fd));
}

}  // namespace
}  // namespace agentvm::guest
