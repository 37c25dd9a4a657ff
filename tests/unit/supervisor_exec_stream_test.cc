// ExecStream with a recording producer: the window is enforced, what the
// consumer takes is credited back in batches, stdin waits for window space,
// and a silent producer is given up on only when it is not waiting for us.
#include "supervisor/exec_stream.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/coroutine_runner.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
using protocol::OutputStream;
namespace asio = boost::asio;

class ExecStreamTest : public ::testing::Test {
 protected:
  std::shared_ptr<ExecStream> Make(ExecStream::Options options) {
    ExecStream::Producer producer;
    producer.output_taken = [this](std::uint64_t bytes) { credited.push_back(bytes); };
    producer.send_stdin = [this](std::string_view data, bool eof) -> Result<void> {
      stdin_sent.push_back(std::string(data));
      stdin_eof = stdin_eof || eof;
      return {};
    };
    producer.signal = [this](int signal) { signals.push_back(signal); };
    producer.abandon = [this] { abandoned = true; };
    return std::make_shared<ExecStream>(io_.get_executor(), options, std::move(producer));
  }

  ExecStream::Options Window(std::uint64_t bytes) {
    ExecStream::Options options;
    options.output_window = bytes;
    return options;
  }

  asio::io_context io_;
  testing::CoroutineRunner run_{io_};
  std::vector<std::uint64_t> credited;
  std::vector<std::string> stdin_sent;
  bool stdin_eof = false;
  std::vector<int> signals;
  bool abandoned = false;
};

TEST_F(ExecStreamTest, HandsOutOutputInOrderThenTheResult) {
  auto exec = Make(Window(1024));
  ASSERT_TRUE(exec->PushOutput(OutputStream::kStdout, "a"));
  ASSERT_TRUE(exec->PushOutput(OutputStream::kStderr, "b"));
  exec->Finish(protocol::ExecResult{.exit_code = 3});
  auto first = run_.Run(exec->NextOutput());
  auto second = run_.Run(exec->NextOutput());
  auto end = run_.Run(exec->NextOutput());
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->data, "a");
  EXPECT_EQ(first->stream, OutputStream::kStdout);
  EXPECT_EQ(second->data, "b");
  EXPECT_EQ(second->stream, OutputStream::kStderr);
  EXPECT_FALSE(end.has_value());
  ASSERT_TRUE(exec->result().has_value());
  EXPECT_EQ(exec->result()->exit_code, 3);
}

TEST_F(ExecStreamTest, TheEndIsToldOnceEvenToAWatcherThatCameAfterIt) {
  auto before = Make(Window(1024));
  int told = 0;
  before->OnFinish([&](const Result<protocol::ExecResult>& result) { told += result->exit_code.value_or(-1); });
  before->Finish(protocol::ExecResult{.exit_code = 3});
  before->Finish(protocol::ExecResult{.exit_code = 4});
  EXPECT_EQ(told, 3);
  // A quick command can end before its starter registers (the events' exec_finished).
  auto after = Make(Window(1024));
  after->Finish(protocol::ExecResult{.exit_code = 5});
  after->OnFinish([&](const Result<protocol::ExecResult>& result) { told += result->exit_code.value_or(-1); });
  EXPECT_EQ(told, 8);
}

TEST_F(ExecStreamTest, OutputBeyondTheWindowIsRefusedAndNotQueued) {
  auto exec = Make(Window(10));
  ASSERT_TRUE(exec->PushOutput(OutputStream::kStdout, std::string(8, 'x')));
  auto over = exec->PushOutput(OutputStream::kStdout, std::string(3, 'y'));
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, ErrorCode::kTooLarge);
  EXPECT_EQ(exec->queued_bytes(), 8u);
}

TEST_F(ExecStreamTest, TakenOutputIsCreditedInBatchesOfAnEighthOfTheWindow) {
  auto exec = Make(Window(800));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(exec->PushOutput(OutputStream::kStdout, std::string(50, 'x')));
  run_.Run(exec->NextOutput());
  EXPECT_TRUE(credited.empty());  // 50 of 100
  run_.Run(exec->NextOutput());
  EXPECT_EQ(credited, std::vector<std::uint64_t>{100});
  for (int i = 0; i < 6; ++i) run_.Run(exec->NextOutput());
  EXPECT_EQ(credited, (std::vector<std::uint64_t>{100, 100, 100, 100}));
}

TEST_F(ExecStreamTest, AWaitingConsumerWakesWhenOutputArrives) {
  auto exec = Make(Window(1024));
  auto next = run_.Spawn(exec->NextOutput());
  run_.RunFor(20ms);
  EXPECT_FALSE(next->has_value());
  ASSERT_TRUE(exec->PushOutput(OutputStream::kStdout, "late"));
  run_.RunUntil([&] { return next->has_value(); }, 5s);
  ASSERT_TRUE(next->has_value() && next->value().has_value());
  EXPECT_EQ(next->value()->data, "late");
}

TEST_F(ExecStreamTest, StdinIsSentInPiecesThatFitTheWindow) {
  ExecStream::Options options;
  options.stdin_window = 100;
  auto exec = Make(options);
  auto write = run_.Spawn(exec->WriteStdin(std::string(250, 's'), /*eof=*/true));
  run_.RunFor(20ms);
  ASSERT_EQ(stdin_sent.size(), 1u);  // the window is full after 100 bytes
  EXPECT_EQ(stdin_sent[0].size(), 100u);
  EXPECT_FALSE(write->has_value());
  exec->StdinAcknowledged(100);
  run_.RunFor(20ms);
  exec->StdinAcknowledged(100);
  run_.RunUntil([&] { return write->has_value(); }, 5s);
  ASSERT_TRUE(write->has_value());
  EXPECT_TRUE(write->value().has_value());
  ASSERT_EQ(stdin_sent.size(), 3u);
  EXPECT_EQ(stdin_sent[2].size(), 50u);
  EXPECT_TRUE(stdin_eof);
  auto again = run_.Run(exec->WriteStdin("more", false));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
}

TEST_F(ExecStreamTest, AWriterWaitingForWindowSpaceIsReleasedWhenTheCommandEnds) {
  ExecStream::Options options;
  options.stdin_window = 10;
  options.stdin_in_flight = 10;  // the exec frame filled the window
  auto exec = Make(options);
  auto write = run_.Spawn(exec->WriteStdin("blocked", false));
  run_.RunFor(20ms);
  EXPECT_FALSE(write->has_value());
  exec->Finish(protocol::ExecResult{.exit_code = 0});
  run_.RunUntil([&] { return write->has_value(); }, 5s);
  ASSERT_TRUE(write->has_value());
  ASSERT_FALSE(write->value().has_value());
  EXPECT_EQ(write->value().error().code, ErrorCode::kUnavailable);
}

TEST_F(ExecStreamTest, ASilentProducerIsGivenUpOnAfterTheDeadline) {
  ExecStream::Options options;
  options.give_up_at = ExecStream::Clock::now() + 50ms;
  options.grace = 50ms;
  auto exec = Make(options);
  auto end = run_.Run(exec->NextOutput());
  EXPECT_FALSE(end.has_value());
  EXPECT_TRUE(abandoned);
  ASSERT_FALSE(exec->result().has_value());
  EXPECT_EQ(exec->result().error().code, ErrorCode::kTimeout);
}

TEST_F(ExecStreamTest, AProducerWaitingForASlowConsumerIsNotGivenUpOn) {
  ExecStream::Options options = Window(100);
  options.give_up_at = ExecStream::Clock::now() + 30ms;
  options.grace = 200ms;
  auto exec = Make(options);
  ASSERT_TRUE(exec->PushOutput(OutputStream::kStdout, std::string(100, 'x')));
  // The consumer dawdles well past the deadline with a full window; the
  // producer could not have sent anything meanwhile.
  run_.RunFor(100ms);
  auto chunk = run_.Run(exec->NextOutput());
  ASSERT_TRUE(chunk.has_value());
  // Within the grace after that take, the producer finishes: no timeout.
  auto next = run_.Spawn(exec->NextOutput());
  run_.RunFor(50ms);
  exec->Finish(protocol::ExecResult{.exit_code = 0});
  run_.RunUntil([&] { return next->has_value(); }, 5s);
  EXPECT_FALSE(abandoned);
  ASSERT_TRUE(exec->result().has_value());
}

TEST_F(ExecStreamTest, DetachDrainsTheOutputSoTheProducerNeverWaits) {
  auto exec = Make(Window(80));
  exec->Detach();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(exec->PushOutput(OutputStream::kStdout, std::string(10, 'd')));
    run_.RunFor(1ms);
  }
  EXPECT_EQ(exec->queued_bytes(), 0u);
  exec->Finish(protocol::ExecResult{.exit_code = 0});
  run_.RunFor(10ms);
}

TEST_F(ExecStreamTest, SignalsReachTheProducerUntilTheEnd) {
  auto exec = Make(Window(10));
  exec->Signal(15);
  exec->Finish(protocol::ExecResult{.signal = 15});
  exec->Signal(9);
  EXPECT_EQ(signals, std::vector<int>{15});
}

}  // namespace
}  // namespace agentvm
