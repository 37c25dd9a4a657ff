#include "supervisor/exec_stream.h"

#include <algorithm>

#include "common/spawn.h"

namespace agentvm {
namespace {

// Output credit goes back to the producer in pieces of this fraction of the
// window: fewer ack frames, and a producer whose consumer keeps up never
// has less than 7/8 of the window to send into.
constexpr std::uint64_t kAckFraction = 8;
// Largest piece of stdin sent in one frame.
constexpr std::uint64_t kStdinPieceBytes = 256 * 1024;

boost::asio::awaitable<void> Drain(std::shared_ptr<ExecStream> stream) {
  while (true) {
    std::optional<ExecOutput> chunk = co_await stream->NextOutput();
    if (!chunk) break;
  }
}

}  // namespace

ExecStream::ExecStream(boost::asio::any_io_executor executor, Options options, Producer producer)
    : executor_(executor),
      options_(std::move(options)),
      producer_(std::move(producer)),
      output_ready_(executor),
      stdin_room_(executor),
      stdin_in_flight_(options_.stdin_in_flight),
      stdin_closed_(options_.stdin_closed),
      last_take_(Clock::now()) {}

ExecStream::Clock::time_point ExecStream::GiveUpAt() const {
  if (!options_.give_up_at) return Clock::time_point::max();
  return std::max(*options_.give_up_at, last_take_ + options_.grace);
}

boost::asio::awaitable<std::optional<ExecOutput>> ExecStream::NextOutput() {
  // Keeps the stream alive across the wait, whoever else lets go of it.
  auto self = shared_from_this();
  while (queue_.empty() && !finished()) {
    bool notified = co_await output_ready_.WaitUntil(GiveUpAt());
    if (!notified && queue_.empty() && !finished() && Clock::now() >= GiveUpAt()) {
      if (producer_.abandon) producer_.abandon();
      auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(GiveUpAt() - last_take_);
      Finish(Fail(ErrorCode::kTimeout, options_.what + ": the guest agent did not report its end in time (" +
                                           std::to_string(limit.count()) + " ms after the last output)"));
    }
  }
  if (queue_.empty()) co_return std::nullopt;
  ExecOutput chunk = std::move(queue_.front());
  queue_.pop_front();
  queued_bytes_ -= chunk.data.size();
  last_take_ = Clock::now();
  CreditTaken(chunk.data.size());
  co_return chunk;
}

void ExecStream::CreditTaken(std::uint64_t bytes) {
  untold_taken_ += bytes;
  if (finished() || !producer_.output_taken) return;
  if (untold_taken_ >= std::max<std::uint64_t>(1, options_.output_window / kAckFraction)) {
    producer_.output_taken(std::exchange(untold_taken_, 0));
  }
}

boost::asio::awaitable<Result<void>> ExecStream::WriteStdin(std::string data, bool eof) {
  auto self = shared_from_this();
  if (stdin_closed_) co_return Fail(ErrorCode::kConflict, options_.what + ": stdin is already closed");
  std::string_view rest = data;
  do {
    while (!finished() && stdin_in_flight_ >= options_.stdin_window) {
      co_await stdin_room_.Wait();
    }
    if (finished()) co_return Fail(ErrorCode::kUnavailable, options_.what + ": the command has ended");
    std::uint64_t room = std::min(options_.stdin_window - stdin_in_flight_, kStdinPieceBytes);
    std::string_view piece = rest.substr(0, static_cast<std::size_t>(room));
    rest.remove_prefix(piece.size());
    bool last = rest.empty();
    // Counted before it is sent: an acknowledgement may come back at once.
    stdin_in_flight_ += piece.size();
    if (last && eof) stdin_closed_ = true;
    if (producer_.send_stdin) {
      if (auto sent = producer_.send_stdin(piece, last && eof); !sent) co_return sent;
    }
  } while (!rest.empty());
  co_return Result<void>{};
}

void ExecStream::Signal(int signal) {
  if (!finished() && producer_.signal) producer_.signal(signal);
}

void ExecStream::Resize(protocol::TerminalSize size) {
  if (!finished() && producer_.resize) producer_.resize(size);
}

void ExecStream::Detach() {
  if (detached_) return;
  detached_ = true;
  SpawnDetached(executor_, Drain(shared_from_this()), options_.what + ": drain after the client left");
}

Result<void> ExecStream::PushOutput(protocol::OutputStream stream, std::string data) {
  if (finished()) return {};  // late output of an exec given up on
  if (queued_bytes_ + data.size() > options_.output_window) {
    return Fail(ErrorCode::kTooLarge, options_.what + ": the guest sent " +
                                          std::to_string(queued_bytes_ + data.size()) +
                                          " bytes of output beyond the window of " +
                                          std::to_string(options_.output_window));
  }
  if (data.empty()) return {};
  queued_bytes_ += data.size();
  queue_.push_back(ExecOutput{stream, std::move(data)});
  output_ready_.Notify();
  return {};
}

void ExecStream::Finish(Result<protocol::ExecResult> result) {
  if (finished()) return;
  result_.emplace(std::move(result));
  output_ready_.Notify();
  stdin_room_.Notify();
  if (auto done = std::exchange(on_finish_, nullptr)) done(*result_);
}

void ExecStream::OnFinish(std::function<void(const Result<protocol::ExecResult>&)> done) {
  if (finished()) {
    done(*result_);
    return;
  }
  on_finish_ = std::move(done);
}

void ExecStream::StdinAcknowledged(std::uint64_t bytes) {
  stdin_in_flight_ -= std::min(bytes, stdin_in_flight_);
  stdin_room_.Notify();
}

}  // namespace agentvm
