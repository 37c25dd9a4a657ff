// Flow control of exec output and stdin, through the real agentvm-guest
// binary over a socketpair (--fd): the guest never has more output in
// flight than the window, stops the program instead of dropping bytes, and
// acknowledges stdin as the program reads it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "protocol/messages.h"
#include "guest-images/agent/testing/agent_harness.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using protocol::ExecRequest;
using protocol::Frame;
using testing::AgentTestBase;

constexpr std::uint64_t kWindow = 16 * 1024;

ExecRequest Sh(std::string script) {
  ExecRequest request;
  request.argv = {"/bin/sh", "-c", std::move(script)};
  return request;
}

class AgentFlowControlTest : public AgentTestBase {
 protected:
  // Reads frames of `stream` for `quiet` after the last one arrived; the
  // output bytes seen, and whether "exit" came.
  struct Seen {
    std::uint64_t output = 0;
    bool exited = false;
    std::optional<protocol::ExecResult> result;
  };
  Seen ReadUntilQuiet(std::uint32_t stream, std::chrono::milliseconds quiet) {
    Seen seen;
    while (auto frame = client_->Next(quiet)) {
      if (frame->stream != stream) continue;
      if (frame->type == protocol::kTypeStdout || frame->type == protocol::kTypeStderr) {
        seen.output += frame->payload.size();
      } else if (frame->type == protocol::kTypeExit) {
        seen.exited = true;
        seen.result = protocol::ParseExit(*frame).value();
        break;
      }
    }
    return seen;
  }
};

TEST_F(AgentFlowControlTest, OutputStopsAtTheWindowAndEveryByteArrivesOnceAcknowledged) {
  constexpr std::uint64_t kTotal = 1000 * 1000;
  ASSERT_TRUE(client_->Send(
      protocol::ExecFrame(1, Sh("head -c 1000000 /dev/zero; echo done >&2"), "", true, kWindow)));

  // Without acknowledgements the guest sends one window and waits: the
  // program is held back, not its output dropped.
  Seen first = ReadUntilQuiet(1, 300ms);
  EXPECT_FALSE(first.exited);
  EXPECT_EQ(first.output, kWindow);

  // Acknowledging what arrived lets the rest through, never more than a
  // window ahead of the acknowledgements.
  std::uint64_t received = first.output;
  std::uint64_t acked = 0;
  std::optional<protocol::ExecResult> result;
  while (!result) {
    if (received > acked) {
      ASSERT_TRUE(client_->Send(protocol::OutputAckFrame(1, received - acked)));
      acked = received;
    }
    auto frame = client_->Next(5s);
    ASSERT_TRUE(frame.has_value()) << "stalled after " << received << " bytes";
    if (frame->type == protocol::kTypeStdout || frame->type == protocol::kTypeStderr) {
      received += frame->payload.size();
      ASSERT_LE(received - acked, kWindow);
    } else if (frame->type == protocol::kTypeExit) {
      result = protocol::ParseExit(*frame).value();
    }
  }
  EXPECT_EQ(received, kTotal + 5);  // "done\n" on stderr
  EXPECT_EQ(result->exit_code, 0);
}

TEST_F(AgentFlowControlTest, TheLastOutputOfAProgramThatExitedWaitsForTheWindow) {
  // 60 KB fits the pipe: the program exits at once, with most of its output
  // still in the pipe behind a full window. "exit" must not overtake it.
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(2, Sh("head -c 60000 /dev/zero; exit 3"), "", true, kWindow)));
  Seen held = ReadUntilQuiet(2, 500ms);
  EXPECT_FALSE(held.exited);
  EXPECT_EQ(held.output, kWindow);

  std::uint64_t received = held.output;
  std::uint64_t acked = 0;
  std::optional<protocol::ExecResult> result;
  while (!result) {
    if (received > acked) {
      ASSERT_TRUE(client_->Send(protocol::OutputAckFrame(2, received - acked)));
      acked = received;
    }
    auto frame = client_->Next(5s);
    ASSERT_TRUE(frame.has_value());
    if (frame->type == protocol::kTypeStdout) received += frame->payload.size();
    if (frame->type == protocol::kTypeExit) result = protocol::ParseExit(*frame).value();
  }
  EXPECT_EQ(received, 60000u);
  EXPECT_EQ(result->exit_code, 3);
}

TEST_F(AgentFlowControlTest, WithoutAWindowOutputIsNotHeldBack) {
  auto outcome = client_->Exec(3, Sh("head -c 300000 /dev/zero"));
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out.size(), 300000u);
}

TEST_F(AgentFlowControlTest, StdinIsAcknowledgedAsTheProgramReadsIt) {
  constexpr std::size_t kChunk = 200 * 1024;
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(4, Sh("wc -c"), std::string(kChunk, 'x'), false, kWindow)));
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(4, std::string(kChunk, 'y'), true)));
  std::uint64_t acked = 0;
  std::string out;
  while (true) {
    auto frame = client_->Next(5s);
    ASSERT_TRUE(frame.has_value());
    if (frame->type == protocol::kTypeStdinAck) acked += protocol::ParseAck(*frame).value();
    if (frame->type == protocol::kTypeStdout) out += frame->payload;
    if (frame->type == protocol::kTypeExit) break;
  }
  EXPECT_EQ(acked, 2 * kChunk);
  EXPECT_EQ(out, std::to_string(2 * kChunk) + "\n");
}

TEST_F(AgentFlowControlTest, StdinOfAProgramThatClosedItIsDroppedButAcknowledged) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(5, Sh("exec 0<&-; sleep 1"), "", false, kWindow)));
  auto started = client_->Next(5s);
  ASSERT_TRUE(started.has_value());
  ASSERT_EQ(started->type, protocol::kTypeStarted);
  // Give the shell time to close its stdin, then stream into the void.
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(5, std::string(300000, 'z'), false)));
  std::uint64_t acked = 0;
  while (acked < 300000) {
    auto frame = client_->Next(5s);
    ASSERT_TRUE(frame.has_value()) << "only " << acked << " bytes acknowledged";
    if (frame->type == protocol::kTypeStdinAck) acked += protocol::ParseAck(*frame).value();
  }
  EXPECT_EQ(acked, 300000u);
}

TEST_F(AgentFlowControlTest, AZeroWindowIsRefused) {
  Frame exec = protocol::ExecFrame(6, Sh("true"), "", true, kWindow);
  exec.header["output_window"] = 0;
  auto outcome = [&] {
    client_->Send(exec);
    return client_->Outcome(6);
  }();
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->code, protocol::kCodeInvalidArgument);
  EXPECT_NE(outcome.error->message.find("output_window"), std::string::npos);
}

}  // namespace
}  // namespace agentvm::guest
