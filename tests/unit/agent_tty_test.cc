// exec on a pseudo-terminal through the real agent binary (--fd): the
// program sees a terminal of the requested size as its controlling
// terminal, resizes reach it, ^C interrupts it, and its status comes back.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "guest-images/agent/testing/agent_harness.h"
#include "protocol/messages.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using testing::AgentTestBase;

protocol::ExecRequest Tty(std::string script, std::uint16_t rows = 24, std::uint16_t cols = 80) {
  protocol::ExecRequest request;
  request.argv = {"/bin/sh", "-c", std::move(script)};
  request.tty = true;
  request.size = {rows, cols};
  return request;
}

class AgentTtyTest : public AgentTestBase {
 protected:
  // Output of `stream` until `text` appears in it (or the exec ends).
  std::string ReadUntil(std::uint32_t stream, std::string_view text) {
    while (output_.find(text) == std::string::npos) {
      auto frame = client_->Next(5s);
      if (!frame) break;
      if (frame->stream != stream) continue;
      if (frame->type == protocol::kTypeStdout) output_ += frame->payload;
      if (frame->type == protocol::kTypeStderr) stderr_seen_ = true;
      if (frame->type == protocol::kTypeExit) {
        result_ = protocol::ParseExit(*frame).value();
        break;
      }
    }
    return output_;
  }
  std::optional<protocol::ExecResult> Finish(std::uint32_t stream) {
    while (!result_) {
      auto frame = client_->Next(5s);
      if (!frame) break;
      if (frame->stream != stream) continue;
      if (frame->type == protocol::kTypeStdout) output_ += frame->payload;
      if (frame->type == protocol::kTypeExit) result_ = protocol::ParseExit(*frame).value();
    }
    return result_;
  }

  std::string output_;
  bool stderr_seen_ = false;
  std::optional<protocol::ExecResult> result_;
};

TEST_F(AgentTtyTest, TheProgramHasAControllingTerminalOfTheRequestedSize) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(1, Tty("tty; stty size; echo err >&2; exit 3", 30, 100), "",
                                                false, 1 << 20)));
  auto result = Finish(1);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->exit_code, 3);
  // A terminal turns "\n" into "\r\n"; stderr is the terminal too.
  EXPECT_NE(output_.find("/dev/pts/"), std::string::npos) << output_;
  EXPECT_NE(output_.find("30 100\r\n"), std::string::npos) << output_;
  EXPECT_NE(output_.find("err\r\n"), std::string::npos) << output_;
  EXPECT_FALSE(stderr_seen_);
}

TEST_F(AgentTtyTest, AResizeReachesTheProgram) {
  ASSERT_TRUE(client_->Send(
      protocol::ExecFrame(2, Tty("stty size; read line; stty size"), "", false, 1 << 20)));
  ReadUntil(2, "24 80\r\n");
  ASSERT_TRUE(client_->Send(protocol::ResizeFrame(2, {50, 132})));
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(2, "\n", false)));
  ReadUntil(2, "50 132\r\n");
  EXPECT_NE(output_.find("50 132\r\n"), std::string::npos) << output_;
  auto result = Finish(2);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->exit_code, 0);
}

TEST_F(AgentTtyTest, CtrlCInterruptsTheForegroundProgram) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(3, Tty("echo go; exec sleep 30"), "", false, 1 << 20)));
  ReadUntil(3, "go\r\n");
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(3, "\x03", false)));
  auto result = Finish(3);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->signal, 2);  // SIGINT, from the terminal's line discipline
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(AgentTtyTest, TypedInputIsEchoedAndRead) {
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(4, Tty("read name; echo \"hello $name\""), "", false, 1 << 20)));
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(4, "vm\r", false)));
  auto result = Finish(4);
  ASSERT_TRUE(result.has_value());
  EXPECT_NE(output_.find("vm\r\n"), std::string::npos) << "echo: " << output_;
  EXPECT_NE(output_.find("hello vm\r\n"), std::string::npos) << output_;
}

TEST_F(AgentTtyTest, EofOnStdinDoesNotCloseTheTerminal) {
  // The program keeps its terminal after the host's stdin ends; ^D typed
  // into it is what ends its input.
  ASSERT_TRUE(client_->Send(protocol::ExecFrame(5, Tty("cat; echo after"), "", false, 1 << 20)));
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(5, "abc\r", true)));
  ReadUntil(5, "abc\r\nabc\r\n");  // echo, then cat
  ASSERT_TRUE(client_->Send(protocol::StdinFrame(5, "\x04", false)));
  auto result = Finish(5);
  ASSERT_TRUE(result.has_value()) << output_;
  EXPECT_NE(output_.find("after"), std::string::npos);
}

}  // namespace
}  // namespace agentvm::guest
