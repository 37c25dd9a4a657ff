#include "cli/interactive_exec.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "cli/interrupt.h"
#include "cli/terminal.h"
#include "cli/write_all.h"
#include "supervisor/api/encoding.h"
#include "supervisor/api/exec_channels.h"
#include "supervisor/api/json_codec.h"

namespace agentvm::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using api::ExecChannel;

// How much of the local stdin may be read ahead of what agentvmd has taken.
constexpr std::size_t kMaxStdinAhead = 1 << 20;
constexpr std::size_t kStdinReadBytes = 64 * 1024;

// One interactive exec. The WebSocket lives on one io_context thread (the
// caller's); a second thread reads the local stdin, which may be anything
// (a terminal, a pipe, a regular file), and hands each chunk over; it stops
// reading while kMaxStdinAhead bytes wait to be sent.
class Session {
 public:
  Session(const InteractiveIo& io) : io_(io), ws_(context_), winch_(context_, SIGWINCH) {}
  ~Session() { StopStdinThread(); }

  Result<protocol::ExecResult> Run(const std::string& socket_path, const std::string& id,
                                   const protocol::ExecRequest& request, std::atomic<int>* interrupt_slot);

 private:
  void Queue(ExecChannel channel, std::string payload, bool is_stdin);
  void WriteNext();
  void ReadNext();
  void WatchWindowSize();
  void StartStdinThread();
  void StopStdinThread();
  void Finish(Result<protocol::ExecResult> outcome);

  InteractiveIo io_;
  asio::io_context context_;
  websocket::stream<asio::local::stream_protocol::socket> ws_;
  asio::signal_set winch_;
  beast::flat_buffer read_buffer_;
  struct Pending {
    std::string message;
    std::size_t stdin_bytes = 0;
  };
  std::deque<Pending> outbox_;
  bool writing_ = false;
  std::optional<Result<protocol::ExecResult>> outcome_;

  std::thread stdin_thread_;
  int wake_[2] = {-1, -1};  // a byte here stops the stdin thread's poll
  std::mutex mutex_;
  std::condition_variable room_;
  std::size_t stdin_ahead_ = 0;  // guarded by mutex_
  bool stopping_ = false;        // guarded by mutex_
};

Result<protocol::ExecResult> Session::Run(const std::string& socket_path, const std::string& id,
                                          const protocol::ExecRequest& request, std::atomic<int>* interrupt_slot) {
  beast::error_code ec;
  ws_.next_layer().connect(asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec) {
    std::string message = "cannot connect to " + socket_path + ": " + ec.message();
    if (ec == asio::error::not_found || ec == asio::error::connection_refused) message += " (is agentvmd running?)";
    return Fail(ErrorCode::kUnavailable, message);
  }
  ActiveFd active(interrupt_slot, ws_.next_layer().native_handle());
  ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& upgrade) {
    upgrade.set(http::field::sec_websocket_protocol, std::string(api::kChannelProtocolV5));
    upgrade.set(http::field::user_agent, "agentvm");
  }));
  const std::string target = "/v1/vms/" + api::PercentEncode(id) + "/exec?request=" +
                             api::PercentEncode(api::ExecRequestToJson(request));
  // Asynchronous on purpose: Beast's synchronous handshake drops the
  // server's answer when it declines, and that answer says why.
  websocket::response_type answer;
  ws_.async_handshake(answer, "agentvmd", target, [&](beast::error_code handshake_ec) { ec = handshake_ec; });
  context_.run();
  context_.restart();
  if (ec) {
    if (answer.result_int() != 101 && !answer.body().empty()) {
      return Fail(api::ErrorFromResponse(answer.result_int(), answer.body()));
    }
    return Fail(ErrorCode::kUnavailable, "lost the connection to agentvmd (" + socket_path + "): " + ec.message());
  }
  ws_.binary(true);

  std::unique_ptr<RawTerminal> raw;
  const bool local_terminal = io_.tty && ::isatty(io_.in_fd);
  if (local_terminal && io_.forward_stdin) {
    auto entered = RawTerminal::Enter(io_.in_fd);
    if (!entered) return Fail(entered.error());
    raw = std::move(*entered);
  }
  if (local_terminal) WatchWindowSize();
  ReadNext();
  if (io_.forward_stdin) StartStdinThread();
  context_.run();
  StopStdinThread();
  raw.reset();  // the terminal as it was, before anything else is printed
  if (!outcome_) return Fail(ErrorCode::kUnavailable, "agentvmd ended the interactive exec without an exit status");
  return std::move(*outcome_);
}

void Session::Finish(Result<protocol::ExecResult> outcome) {
  if (!outcome_) outcome_.emplace(std::move(outcome));
  beast::error_code ignored;
  winch_.cancel(ignored);
  // Ends the session whatever is pending: the stdin thread's next chunk
  // finds nobody, the reader its socket closed.
  ws_.next_layer().close(ignored);
}

void Session::ReadNext() {
  ws_.async_read(read_buffer_, [this](beast::error_code ec, std::size_t) {
    if (ec) {
      // After the status message this is the server's close: the outcome
      // stands (Finish keeps the first) and the session ends.
      return Finish(Fail(ErrorCode::kUnavailable, "lost the connection to agentvmd: " + ec.message()));
    }
    std::string message = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    auto decoded = api::DecodeChannelMessage(message);
    if (decoded) {
      switch (decoded->channel) {
        case ExecChannel::kStdout:
        case ExecChannel::kStderr:
          // A closed local output (a pager quit) ends the session, as a
          // broken pipe ends a local program.
          if (!WriteAll(decoded->channel == ExecChannel::kStdout ? io_.out_fd : io_.err_fd, decoded->payload)) {
            if (io_.output_closed) *io_.output_closed = true;
            return Finish(Fail(ErrorCode::kUnavailable, "the local output closed"));
          }
          break;
        case ExecChannel::kStatus:
          outcome_.emplace(api::ParseExecStatusJson(decoded->payload));
          break;
        default:
          break;
      }
    }
    ReadNext();
  });
}

void Session::WatchWindowSize() {
  winch_.async_wait([this](beast::error_code ec, int) {
    if (ec) return;
    if (auto size = TerminalSizeOf(io_.in_fd)) Queue(ExecChannel::kResize, api::ResizeJson(*size), false);
    WatchWindowSize();
  });
}

void Session::Queue(ExecChannel channel, std::string payload, bool is_stdin) {
  std::size_t stdin_bytes = is_stdin ? payload.size() : 0;
  outbox_.push_back(Pending{api::EncodeChannelMessage(channel, payload), stdin_bytes});
  if (!writing_) WriteNext();
}

void Session::WriteNext() {
  if (outbox_.empty() || outcome_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  ws_.async_write(asio::buffer(outbox_.front().message), [this](beast::error_code ec, std::size_t) {
    std::size_t sent_stdin = outbox_.front().stdin_bytes;
    outbox_.pop_front();
    if (sent_stdin > 0) {
      std::lock_guard lock(mutex_);
      stdin_ahead_ -= sent_stdin;
      room_.notify_all();
    }
    if (ec) {
      writing_ = false;
      return Finish(Fail(ErrorCode::kUnavailable, "lost the connection to agentvmd: " + ec.message()));
    }
    WriteNext();
  });
}

void Session::StartStdinThread() {
  if (::pipe2(wake_, O_CLOEXEC) != 0) return;
  stdin_thread_ = std::thread([this] {
    char buffer[kStdinReadBytes];
    while (true) {
      {
        std::unique_lock lock(mutex_);
        room_.wait(lock, [this] { return stopping_ || stdin_ahead_ < kMaxStdinAhead; });
        if (stopping_) return;
      }
      pollfd fds[2] = {{io_.in_fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents) return;
      ssize_t n = ::read(io_.in_fd, buffer, sizeof buffer);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        // The end of the local stdin ends the command's (v5 close of
        // channel 0). A terminal has no end to pass on.
        if (!io_.tty) {
          asio::post(context_, [this] { Queue(ExecChannel::kClose, std::string(1, '\0'), false); });
        }
        return;
      }
      {
        std::lock_guard lock(mutex_);
        stdin_ahead_ += static_cast<std::size_t>(n);
      }
      asio::post(context_, [this, chunk = std::string(buffer, static_cast<std::size_t>(n))]() mutable {
        Queue(ExecChannel::kStdin, std::move(chunk), true);
      });
    }
  });
}

void Session::StopStdinThread() {
  if (stdin_thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      room_.notify_all();
    }
    [[maybe_unused]] auto ignored = ::write(wake_[1], "x", 1);
    stdin_thread_.join();
  }
  for (int& fd : wake_) {
    if (fd >= 0) ::close(std::exchange(fd, -1));
  }
}

}  // namespace

Result<protocol::ExecResult> RunInteractiveExec(const std::string& socket_path, const std::string& id,
                                                const protocol::ExecRequest& request, const InteractiveIo& io,
                                                std::atomic<int>* interrupt_slot) {
  Session session(io);
  return session.Run(socket_path, id, request, interrupt_slot);
}

}  // namespace agentvm::cli
