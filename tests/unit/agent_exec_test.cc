// exec through the real agentvm-guest binary over a socketpair (--fd).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "protocol/messages.h"
#include "guest-images/agent/testing/agent_harness.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using protocol::ExecRequest;
using testing::AgentProcess;
using testing::AgentTestBase;
using testing::ExecOutcome;
using testing::FrameClient;

ExecRequest Sh(std::string script) {
  ExecRequest request;
  request.argv = {"/bin/sh", "-c", std::move(script)};
  return request;
}

class AgentExecTest : public AgentTestBase {};

TEST_F(AgentExecTest, RunsAShellAndReportsOutputAndExitCode) {
  ExecOutcome outcome = client_->Exec(1, Sh("echo out; echo err >&2; exit 7"));
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out, "out\n");
  EXPECT_EQ(outcome.err, "err\n");
  EXPECT_EQ(outcome.result->exit_code, 7);
  EXPECT_FALSE(outcome.result->signal.has_value());
  EXPECT_FALSE(outcome.result->timed_out);
  ASSERT_TRUE(outcome.pid.has_value());
  EXPECT_GT(*outcome.pid, 0);
  EXPECT_EQ(outcome.frames.front().type, protocol::kTypeStarted);
  EXPECT_EQ(outcome.frames.back().type, protocol::kTypeExit);
}

TEST_F(AgentExecTest, StreamsOutputInOrderAsItIsProduced) {
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(
      2, Sh("echo 1; sleep 0.2; echo 2 >&2; sleep 0.2; echo 3; sleep 0.4"), "", true)));
  // The first line arrives long before the process ends.
  std::vector<protocol::Frame> early;
  while (true) {
    auto frame = client_->Next(5s);
    ASSERT_TRUE(frame.has_value());
    early.push_back(*frame);
    if (frame->type == protocol::kTypeStdout) break;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_EQ(early.back().payload, "1\n");

  ExecOutcome rest = client_->Outcome(2);
  std::vector<std::pair<std::string, std::string>> output;
  for (const auto& f : rest.frames) {
    if (f.type == protocol::kTypeStdout || f.type == protocol::kTypeStderr) {
      output.emplace_back(f.type, f.payload);
    }
  }
  std::vector<std::pair<std::string, std::string>> expected = {{"stderr", "2\n"},
                                                               {"stdout", "3\n"}};
  EXPECT_EQ(output, expected);
  ASSERT_TRUE(rest.result.has_value());
  EXPECT_EQ(rest.result->exit_code, 0);
}

TEST_F(AgentExecTest, TimeoutKillsTheWholeProcessGroup) {
  ExecRequest request = Sh("sleep 100 & echo $!; sleep 100");
  request.timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  ExecOutcome outcome = client_->Exec(3, request);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_TRUE(outcome.result->timed_out);
  EXPECT_EQ(outcome.result->signal, SIGKILL);
  EXPECT_EQ(outcome.result->ShellStatus(), 124);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);

  pid_t background = std::stoi(outcome.out);
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!testing::ProcessGone(background) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(testing::ProcessGone(background)) << "background sleep " << background << " survived";
}

TEST_F(AgentExecTest, MissingProgramIsAClearError) {
  ExecRequest request;
  request.argv = {"nope-not-a-program"};
  ExecOutcome outcome = client_->Exec(4, request);
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->code, "not_found");
  EXPECT_EQ(outcome.error->message, "exec nope-not-a-program: No such file or directory");
  EXPECT_FALSE(outcome.pid.has_value());

  request.argv = {"/does/not/exist"};
  outcome = client_->Exec(5, request);
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->message, "exec /does/not/exist: No such file or directory");

  request.argv = {"/etc"};
  outcome = client_->Exec(6, request);
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->message, "exec /etc: Permission denied");
}

TEST_F(AgentExecTest, BadCwdAndEmptyArgvAreErrors) {
  ExecRequest request = Sh("pwd");
  request.cwd = "/no/such/dir";
  ExecOutcome outcome = client_->Exec(7, request);
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->message, "chdir /no/such/dir: No such file or directory");

  ASSERT_TRUE(client_->Send(
      protocol::MakeFrame(protocol::kTypeExec, 8, {{"argv", nlohmann::json::array()}})));
  outcome = client_->Outcome(8);
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->code, "invalid_argument");
  EXPECT_NE(outcome.error->message.find("argv is empty"), std::string::npos);
}

TEST_F(AgentExecTest, EnvironmentAndWorkingDirectory) {
  ExecRequest request = Sh("echo \"$FOO|$HOME|$PATH\"; pwd");
  request.env = {{"FOO", "bar baz"}};
  request.cwd = "/tmp";
  ExecOutcome outcome = client_->Exec(9, request);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out,
            "bar baz|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/tmp\n");
}

TEST_F(AgentExecTest, StdinFromThePayloadAndFollowUpFrames) {
  ExecRequest cat;
  cat.argv = {"cat"};
  cat.stdin_data = std::string("binary\0stdin\xff", 13);
  ExecOutcome outcome = client_->Exec(10, cat);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out, cat.stdin_data);

  cat.stdin_data.clear();
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(11, cat, "first ", false)));
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(11, "second ", false)));
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(11, "third", true)));
  outcome = client_->Outcome(11);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out, "first second third");
  EXPECT_EQ(outcome.result->exit_code, 0);
}

TEST_F(AgentExecTest, SignalGoesToTheProcessGroup) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(12, Sh("sleep 100; echo never"), "", true)));
  auto started = client_->Next(5s);
  ASSERT_TRUE(started.has_value());
  ASSERT_EQ(started->type, protocol::kTypeStarted);
  ASSERT_TRUE(client_->Send(protocol::SignalFrame(12, SIGTERM)));
  ExecOutcome outcome = client_->Outcome(12);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.result->signal, SIGTERM);
  EXPECT_EQ(outcome.out, "");
}

// "started" waits for a short program's exit, to leave in the same write,
// but never long: a silent long program's host hears of it within 10 ms
// (1 s here, for a loaded machine), and one whose stdin is streamed at once.
TEST_F(AgentExecTest, StartedComesWithAShortProgramsExitAndSoonForALongOne) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(30, Sh("exit 3"), "", true)));
  ExecOutcome quick = client_->Outcome(30);
  ASSERT_TRUE(quick.result.has_value());
  ASSERT_GE(quick.frames.size(), 2u);
  EXPECT_EQ(quick.frames.front().type, protocol::kTypeStarted);
  EXPECT_EQ(quick.result->exit_code, 3);

  for (bool streamed_stdin : {false, true}) {
    const std::uint32_t stream = streamed_stdin ? 32 : 31;
    auto sent = std::chrono::steady_clock::now();
    ASSERT_TRUE(client_->Send(protocol::ExecFrame(stream, Sh("sleep 100"), "", !streamed_stdin)));
    auto started = client_->Next(5s);
    ASSERT_TRUE(started.has_value());
    EXPECT_EQ(started->type, protocol::kTypeStarted);
    EXPECT_LT(std::chrono::steady_clock::now() - sent, 1s) << "streamed stdin: " << streamed_stdin;
    ASSERT_TRUE(client_->Send(protocol::SignalFrame(stream, SIGKILL)));
    ASSERT_TRUE(client_->Outcome(stream).result.has_value());
  }
}

TEST_F(AgentExecTest, ExitIsNotHeldBackByABackgroundChildKeepingThePipeOpen) {
  auto start = std::chrono::steady_clock::now();
  ExecOutcome outcome = client_->Exec(13, Sh("sleep 3 & echo hi"));
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.result->exit_code, 0);
  EXPECT_EQ(outcome.out, "hi\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(AgentExecTest, ConcurrentExecsOnSeparateStreams) {
  auto start = std::chrono::steady_clock::now();
  for (std::uint32_t stream : {20u, 21u, 22u}) {
    ASSERT_TRUE(client_->Send(
        protocol::ExecFrame(stream, Sh("sleep 0.5; echo " + std::to_string(stream)), "", true)));
  }
  for (std::uint32_t stream : {22u, 20u, 21u}) {
    ExecOutcome outcome = client_->Outcome(stream);
    ASSERT_TRUE(outcome.result.has_value()) << stream;
    EXPECT_EQ(outcome.out, std::to_string(stream) + "\n");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1400ms);
}

TEST_F(AgentExecTest, LargeOutputArrivesCompleteAndPingsAreAnsweredMeanwhile) {
  ASSERT_TRUE(client_->Send(
      protocol::ExecFrame(30, Sh("head -c 20000000 /dev/zero; echo done >&2"), "", true)));
  ASSERT_TRUE(client_->Send(protocol::PingFrame(31)));
  std::size_t out_bytes = 0;
  bool pong = false;
  std::optional<protocol::ExecResult> result;
  while (!result) {
    auto frame = client_->Next(20s);
    ASSERT_TRUE(frame.has_value());
    if (frame->type == protocol::kTypePong) pong = true;
    if (frame->type == protocol::kTypeStdout) out_bytes += frame->payload.size();
    if (frame->type == protocol::kTypeExit) result = protocol::ParseExit(*frame).value();
  }
  EXPECT_TRUE(pong);
  EXPECT_EQ(out_bytes, 20000000u);
  EXPECT_EQ(result->exit_code, 0);
}

// Large output written in big pieces (frames of up to 256 KiB read straight
// into their buffers) arrives byte for byte and in order. It also guards
// any later zero-copy path (splice() from the pipe: see bench/README.md,
// section 9, for why it is not used).
TEST_F(AgentExecTest, LargeOutputArrivesByteForByte) {
  // dd writes 1 MiB at a time, so the pipe fills faster than the agent
  // drains it, even on a host with cores to spare.
  const std::string file = "/tmp/agentvm-splice-test-" + std::to_string(::getpid());
  ExecOutcome outcome = client_->Exec(
      31, Sh("seq 1 400000 > " + file + " && dd if=" + file + " bs=1048576 2>/dev/null; rm -f " + file + "; echo end"),
      30s);
  ASSERT_TRUE(outcome.result.has_value());
  std::string expected;
  for (int i = 1; i <= 400000; ++i) expected += std::to_string(i) + "\n";
  expected += "end\n";
  EXPECT_EQ(outcome.out.size(), expected.size());
  EXPECT_TRUE(outcome.out == expected) << "the output differs from seq's";
  EXPECT_EQ(outcome.result->exit_code, 0);
}

TEST_F(AgentExecTest, StreamInUseIsRefused) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(40, Sh("sleep 1"), "", true)));
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(40, Sh("echo again"), "", true)));
  ExecOutcome outcome = client_->Outcome(40);
  // started, then the conflict error for the second request
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->code, "conflict");
}

}  // namespace
}  // namespace agentvm::guest
