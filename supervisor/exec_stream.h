// ExecStream: the host's end of one command running in a guest, as its
// consumer (the API, a pool's warm-up, a benchmark) sees it: the output in
// the order it was produced, the command's stdin, signals, and how it ended.
//
// Flow control, both ways (docs/guest-protocol.md, "Flow control"): the
// producer (the guest, through GuestChannel; a fake in tests) queues output
// here, at most `output_window` bytes the consumer has not taken; what the
// consumer takes is credited back to the producer. A slow consumer therefore
// slows the command down (its writes block in the guest): no byte is dropped
// and nothing grows without bound. Stdin goes out in pieces that fit the
// guest's stdin window, each write waiting for the guest to acknowledge
// what the command has read.
//
// Single-threaded (the daemon's io_context thread). Held by shared_ptr: the
// producer and the consumer each keep it, and either may be done first.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "common/notifier.h"
#include "protocol/exec_types.h"
#include "protocol/messages.h"

namespace agentvm {

struct ExecOutput {
  protocol::OutputStream stream = protocol::OutputStream::kStdout;
  std::string data;
};

class ExecStream : public std::enable_shared_from_this<ExecStream> {
 public:
  using Clock = std::chrono::steady_clock;

  // What the stream asks of its producer. Every member may be empty.
  struct Producer {
    // The consumer took this many more output bytes: the producer may send
    // that many more ("output_ack"). Batched: called per window/8 or so.
    std::function<void(std::uint64_t bytes)> output_taken;
    // Sends stdin bytes, then closes stdin if `eof`. Never more at once than
    // the window has room for.
    std::function<Result<void>(std::string_view data, bool eof)> send_stdin;
    std::function<void(int signal)> signal;
    std::function<void(protocol::TerminalSize size)> resize;
    // The stream gave up on a silent producer: stop routing to it and kill
    // the command.
    std::function<void()> abandon;
  };

  struct Options {
    std::string what = "exec";  // names the command in error messages
    std::uint64_t output_window = protocol::kDefaultOutputWindow;
    std::uint64_t stdin_window = protocol::kStdinWindowBytes;
    // Stdin the producer already sent with the command itself.
    std::uint64_t stdin_in_flight = 0;
    bool stdin_closed = false;
    // With a guest-side timeout: give up on a producer that has not
    // finished by then, nor within `grace` of the consumer's last take (a
    // producer waiting for credit is not silent, it is waiting for us).
    std::optional<Clock::time_point> give_up_at;
    std::chrono::milliseconds grace{5000};
  };

  ExecStream(boost::asio::any_io_executor executor, Options options, Producer producer);
  ExecStream(const ExecStream&) = delete;
  ExecStream& operator=(const ExecStream&) = delete;

  // ---- The consumer's side.

  // The next chunk of output; nullopt once the command has ended and all of
  // its output was taken (result() then says how it ended).
  boost::asio::awaitable<std::optional<ExecOutput>> NextOutput();
  bool finished() const { return result_.has_value(); }
  // Valid once finished(): the exit (code, signal, timed_out) or why the
  // exec failed (the guest went away, it never answered).
  const Result<protocol::ExecResult>& result() const { return *result_; }

  // Sends `data` to the command's stdin, in window-sized pieces, waiting
  // while the window is full; `eof` closes stdin after it. Fails with
  // kConflict after eof and kUnavailable once the command has ended (its
  // stdin is gone; what was not sent is dropped).
  boost::asio::awaitable<Result<void>> WriteStdin(std::string data, bool eof);
  void Signal(int signal);
  // The terminal of a tty exec changed size.
  void Resize(protocol::TerminalSize size);
  // The consumer is gone: output is taken and dropped from now on, so the
  // command runs on to its end without waiting for a reader.
  void Detach();

  // ---- The producer's side.

  // Queues output. kTooLarge when it does not fit the window: the producer
  // broke flow control, and nothing was queued.
  Result<void> PushOutput(protocol::OutputStream stream, std::string data);
  // The command ended (or the exec failed). The first call wins; output
  // queued before it is still handed out.
  void Finish(Result<protocol::ExecResult> result);
  // The guest took `bytes` more of the stdin sent ("stdin_ack").
  void StdinAcknowledged(std::uint64_t bytes);

  // Calls `done` once, when the command ends or the exec fails (after
  // Finish), for whoever keeps count of execs (the daemon's events and
  // metrics); at once if that already happened (a quick command can end
  // before its starter gets here). At most one; a later call replaces it.
  void OnFinish(std::function<void(const Result<protocol::ExecResult>&)> done);

  // Sets Options::give_up_at once the deadline is known (the command started).
  void set_give_up_at(Clock::time_point at) { options_.give_up_at = at; }

  // Output bytes queued and not yet taken, and the most there may be.
  std::uint64_t queued_bytes() const { return queued_bytes_; }
  std::uint64_t output_window() const { return options_.output_window; }

 private:
  void CreditTaken(std::uint64_t bytes);
  Clock::time_point GiveUpAt() const;

  boost::asio::any_io_executor executor_;
  Options options_;
  Producer producer_;
  Notifier output_ready_;  // output queued, or finished
  Notifier stdin_room_;    // stdin acknowledged, or finished
  std::deque<ExecOutput> queue_;
  std::uint64_t queued_bytes_ = 0;
  std::uint64_t untold_taken_ = 0;  // taken, not yet reported to output_taken
  std::uint64_t stdin_in_flight_ = 0;
  bool stdin_closed_ = false;
  bool detached_ = false;
  Clock::time_point last_take_;
  std::optional<Result<protocol::ExecResult>> result_;
  std::function<void(const Result<protocol::ExecResult>&)> on_finish_;
};

}  // namespace agentvm
