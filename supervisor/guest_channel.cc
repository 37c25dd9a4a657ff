#include "supervisor/guest_channel.h"

#include <signal.h>
#include <sys/random.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/logging.h"
#include "common/pending.h"
#include "common/spawn.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "supervisor/guest_log.h"

namespace agentvm {
namespace {

namespace asio = boost::asio;
using protocol::Frame;
using Clock = std::chrono::steady_clock;
using Reply = Pending<Result<Frame>>;

constexpr std::size_t kReadBufferBytes = 256 * 1024;
constexpr std::chrono::milliseconds kReadyPingInterval{250};
// "No deadline" for an exec without a timeout; Pending needs a finite one.
constexpr std::chrono::hours kForever{24 * 365 * 10};

std::string Millis(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

bool IsTerminal(std::string_view type) {
  using namespace protocol;
  return type == kTypeExit || type == kTypeError || type == kTypePong || type == kTypeOk ||
         type == kTypeData;
}

// The guest's "error" reply as an Error; other replies pass through. A
// connection error gets the request's name in front.
Result<Frame> ReplyOrError(Result<Frame> reply, std::string_view what) {
  if (!reply) return Fail(reply.error().Wrap(what));
  if (reply->type != protocol::kTypeError) return reply;
  auto error = protocol::ParseError(*reply);
  if (!error) return Fail(ErrorCode::kInternal, std::string(what) + ": " + error.error());
  return Fail(ErrorCodeFromName(error->code), error->message);
}

std::unexpected<Error> Unexpected(std::string_view what, const Frame& frame) {
  return Fail(ErrorCode::kInternal,
              std::string(what) + ": unexpected \"" + frame.type + "\" reply from the guest agent");
}

// Warnings about one guest: a burst of 20, then one a second.
constexpr int kWarnBurst = 20;
constexpr std::chrono::seconds kWarnInterval{1};

// One request in flight, keyed by its stream id.
struct Call {
  std::shared_ptr<Reply> reply;  // not exec: the terminal frame, or the connection's end
  // exec: "started", or why it never did; then the stream gets the rest.
  std::shared_ptr<Pending<Result<void>>> started;
  std::shared_ptr<ExecStream> exec;
  std::string exec_what;  // "exec sh", for its errors
};

// How an exec ended, from its terminal frame.
Result<protocol::ExecResult> ExecOutcome(Frame frame, const std::string& what) {
  auto reply = ReplyOrError(std::move(frame), what);
  if (!reply) return Fail(reply.error());
  if (reply->type != protocol::kTypeExit) return Unexpected(what, *reply);
  auto result = protocol::ParseExit(*reply);
  if (!result) return Fail(ErrorCode::kInternal, what + ": " + result.error());
  return *result;
}

// Sends the part of an exec's stdin that did not fit its first frame.
asio::awaitable<void> FeedStdin(std::shared_ptr<ExecStream> exec, std::string rest) {
  auto sent = co_await exec->WriteStdin(std::move(rest), /*eof=*/true);
  if (!sent) Logger("guest")->debug("{}", sent.error().message);
}

}  // namespace

struct GuestChannel::State : std::enable_shared_from_this<GuestChannel::State> {
  State(Socket s, std::string id, GuestChannelLimits l)
      : socket(std::move(s)),
        vm_id(std::move(id)),
        log(Logger("guest")),
        limits(l),
        decoder(protocol::kMaxFrameBytes, l.max_header_bytes) {}

  Socket socket;
  std::string vm_id;
  std::shared_ptr<spdlog::logger> log;
  GuestChannelLimits limits;
  LogBudget warn_budget{kWarnBurst, kWarnInterval};
  int protocol_errors = 0;
  protocol::FrameDecoder decoder;
  std::uint32_t next_stream = 1;
  std::unordered_map<std::uint32_t, Call> calls;
  std::deque<std::string> outbox;  // encoded frames; front() may be in flight
  std::size_t outbox_bytes = 0;    // sum of outbox's sizes
  bool writing = false;
  bool reading = false;
  bool closed = false;
  std::optional<Error> close_error;
  std::function<void(const Error&)> on_closed;
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds exec_grace{5000};
  std::uint64_t output_window = protocol::kDefaultOutputWindow;

  asio::any_io_executor executor() { return socket.get_executor(); }

  std::uint32_t Register(Call call) {
    std::uint32_t stream;
    do {
      stream = next_stream++;
      if (next_stream == 0) next_stream = 1;  // 0 is the connection's
    } while (stream == 0 || calls.contains(stream));
    calls.emplace(stream, std::move(call));
    return stream;
  }

  void Forget(std::uint32_t stream) { calls.erase(stream); }

  Error ClosedError(std::string_view what) const {
    return Error{ErrorCode::kUnavailable,
                 std::string(what) + ": " + (close_error ? close_error->message : "closed")};
  }

  Result<void> Send(const Frame& frame, std::string_view what) {
    if (closed) return Fail(ClosedError(what));
    std::string bytes = protocol::EncodeFrame(frame);
    if (!protocol::EncodedFits(bytes)) {
      return Fail(ErrorCode::kTooLarge, std::string(what) + ": request of " +
                                            std::to_string(bytes.size()) +
                                            " bytes exceeds the guest protocol's frame limit");
    }
    outbox_bytes += bytes.size();
    outbox.push_back(std::move(bytes));
    if (outbox_bytes > limits.max_outbox_bytes) {
      Error error{ErrorCode::kUnavailable,
                  "the guest is not reading: " + std::to_string(outbox_bytes) +
                      " bytes queued for it exceed the cap of " +
                      std::to_string(limits.max_outbox_bytes)};
      Shut(error);
      return Fail(error.Wrap(what));
    }
    if (!writing) {
      writing = true;
      SpawnDetached(executor(), WriteLoop(shared_from_this()), vm_id + ": guest write loop", log);
    }
    return {};
  }

  // The connection is over: fail every call, tell the owner, once.
  void Shut(Error error) {
    if (closed) return;
    closed = true;
    close_error = error;
    boost::system::error_code ignored;
    socket.close(ignored);
    // The writer may have outbox.front() in flight; it clears the rest.
    if (!writing) ClearOutbox();
    auto pending = std::move(calls);
    calls.clear();
    for (auto& [stream, call] : pending) {
      if (call.started) call.started->Set(Fail(error));
      if (call.exec) call.exec->Finish(Fail(error));
      if (call.reply) call.reply->Set(Fail(error));
    }
    log->info("{}: guest channel closed: {}", vm_id, error.message);
    if (on_closed) {
      auto callback = std::move(on_closed);
      on_closed = nullptr;
      callback(error);
    }
  }

  void ClearOutbox() {
    outbox.clear();
    outbox_bytes = 0;
  }

  // A warning line, unless this guest has had its share of them.
  void Warn(const std::string& message) {
    if (!warn_budget.Take()) return;
    if (warn_budget.suppressed() > 0) {
      log->warn("{}: {} ({} similar lines suppressed)", vm_id, message, warn_budget.suppressed());
    } else {
      log->warn("{}: {}", vm_id, message);
    }
  }

  // The guest broke the protocol; too many times ends the channel. True
  // when it did.
  bool ProtocolError(const std::string& what) {
    Warn(what);
    if (++protocol_errors < limits.max_protocol_errors) return false;
    Shut(Error{ErrorCode::kUnavailable,
               "the guest agent broke the protocol " + std::to_string(protocol_errors) +
                   " times (last: " + what + ")"});
    return true;
  }

  void Dispatch(Frame frame) {
    if (frame.stream == 0) {
      // Connection-level: the agent refused one of our frames.
      auto error = protocol::ParseError(frame);
      Warn("guest agent on stream 0: " + GuestText(frame.type) + " " +
           (error ? GuestText(error->code) + ": " + GuestText(error->message) : std::string()));
      return;
    }
    auto it = calls.find(frame.stream);
    if (it == calls.end()) {
      // A reply to a call that timed out, or output of an exec given up on.
      log->debug("{}: dropped late \"{}\" frame on stream {}", vm_id, GuestText(frame.type), frame.stream);
      return;
    }
    Call& call = it->second;
    const std::string& type = frame.type;
    if (type == protocol::kTypeStarted) {
      if (call.started) call.started->Set(Result<void>{});
    } else if ((type == protocol::kTypeStdout || type == protocol::kTypeStderr) && call.exec) {
      auto which = type == protocol::kTypeStdout ? protocol::OutputStream::kStdout
                                                 : protocol::OutputStream::kStderr;
      if (auto queued = call.exec->PushOutput(which, std::move(frame.payload)); !queued) {
        // The guest ignored the window: its output cannot be trusted to stay
        // bounded, so the exec ends here.
        Warn(queued.error().message);
        auto exec = call.exec;
        Abandon(frame.stream);
        exec->Finish(Fail(queued.error()));
      }
    } else if (type == protocol::kTypeStdinAck && call.exec) {
      if (auto bytes = protocol::ParseAck(frame)) {
        call.exec->StdinAcknowledged(*bytes);
      } else {
        ProtocolError(GuestText(bytes.error()));
      }
    } else if (IsTerminal(type)) {
      Call done = std::move(call);
      calls.erase(it);
      if (done.exec) {
        // An exec that failed to start ends with "error" before "started".
        auto outcome = ExecOutcome(std::move(frame), done.exec_what);
        if (!outcome && done.started && !done.started->done()) {
          done.started->Set(Fail(outcome.error()));
        } else if (done.started) {
          done.started->Set(Result<void>{});
        }
        done.exec->Finish(std::move(outcome));
      } else if (done.reply) {
        done.reply->Set(std::move(frame));
      }
    } else {
      ProtocolError("unexpected \"" + GuestText(type) + "\" frame on stream " +
                    std::to_string(frame.stream));
    }
  }

  // Stops routing to `stream` and kills its command, which nobody waits for.
  void Abandon(std::uint32_t stream) {
    Forget(stream);
    (void)Send(protocol::SignalFrame(stream, SIGKILL), "signal");
  }

  static asio::awaitable<void> WriteLoop(std::shared_ptr<State> self) {
    while (!self->outbox.empty() && !self->closed) {
      boost::system::error_code ec;
      co_await asio::async_write(self->socket, asio::buffer(self->outbox.front()),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        self->Shut(Error{ErrorCode::kUnavailable,
                         "connection to the guest agent lost: write: " + ec.message()});
        break;
      }
      self->outbox_bytes -= self->outbox.front().size();
      self->outbox.pop_front();
    }
    self->writing = false;
    if (self->closed) self->ClearOutbox();
  }

  static asio::awaitable<void> ReadLoop(std::shared_ptr<State> self) {
    std::vector<char> buffer(kReadBufferBytes);
    try {
      while (!self->closed) {
        boost::system::error_code ec;
        std::size_t n = co_await self->socket.async_read_some(
            asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          self->Shut(Error{ErrorCode::kUnavailable,
                           ec == asio::error::eof
                               ? "connection to the guest agent closed by the guest"
                               : "connection to the guest agent lost: read: " + ec.message()});
          break;
        }
        self->decoder.Feed(std::string_view(buffer.data(), n));
        while (!self->closed) {
          auto event = self->decoder.Next();
          if (!event) break;
          if (auto* error = std::get_if<protocol::DecodeError>(&*event)) {
            // Refused and skipped by the decoder; tell the agent, keep
            // serving, up to the limit.
            if (self->ProtocolError("refused a frame from the guest: " + error->message)) break;
            (void)self->Send(protocol::ErrorFrame(0, error->code, error->message), "error reply");
            continue;
          }
          self->Dispatch(std::get<Frame>(std::move(*event)));
        }
      }
    } catch (const std::exception& e) {
      self->Shut(Error{ErrorCode::kInternal, std::string("guest channel reader: ") + e.what()});
    }
  }

  // Registers a call, sends the frame `build` makes for its stream and waits
  // for the terminal reply.
  static asio::awaitable<Result<Frame>> RoundTrip(std::shared_ptr<State> self,
                                                  std::function<Frame(std::uint32_t)> build,
                                                  std::chrono::milliseconds timeout,
                                                  std::string what) {
    if (self->closed) co_return Fail(self->ClosedError(what));
    auto reply = std::make_shared<Reply>(self->executor());
    std::uint32_t stream = self->Register(Call{reply, nullptr, nullptr});
    if (auto sent = self->Send(build(stream), what); !sent) {
      self->Forget(stream);
      co_return Fail(sent.error());
    }
    auto got = co_await reply->Wait(timeout);
    if (!got) {
      self->Forget(stream);
      co_return Fail(ErrorCode::kTimeout,
                     what + ": the guest agent did not answer within " + Millis(timeout));
    }
    co_return ReplyOrError(std::move(*got), what);
  }
};

GuestChannel::GuestChannel(Socket socket, std::string vm_id, GuestChannelLimits limits)
    : state_(std::make_shared<State>(std::move(socket), std::move(vm_id), limits)) {}

GuestChannel::~GuestChannel() {
  state_->on_closed = nullptr;
  Close();
}

void GuestChannel::Start() {
  if (state_->reading || state_->closed) return;
  state_->reading = true;
  SpawnDetached(state_->executor(), State::ReadLoop(state_), state_->vm_id + ": guest read loop", state_->log);
}

void GuestChannel::Close() {
  state_->Shut(
      Error{ErrorCode::kUnavailable, "connection to the guest agent closed by the supervisor"});
}

bool GuestChannel::closed() const { return state_->closed; }

void GuestChannel::OnClosed(std::function<void(const Error&)> callback) {
  if (state_->closed) {
    if (callback) callback(*state_->close_error);
    return;
  }
  state_->on_closed = std::move(callback);
}

void GuestChannel::set_request_timeout(std::chrono::milliseconds timeout) {
  state_->request_timeout = timeout;
}

void GuestChannel::set_exec_grace(std::chrono::milliseconds grace) { state_->exec_grace = grace; }

void GuestChannel::set_output_window(std::uint64_t bytes) { state_->output_window = bytes; }

asio::awaitable<Result<void>> GuestChannel::Ping(std::chrono::milliseconds timeout) {
  auto reply = co_await State::RoundTrip(
      state_, [](std::uint32_t stream) { return protocol::PingFrame(stream); }, timeout, "ping");
  if (!reply) co_return Fail(reply.error());
  if (reply->type != protocol::kTypePong) co_return Unexpected("ping", *reply);
  co_return Result<void>{};
}

asio::awaitable<Result<void>> GuestChannel::WaitReady(std::chrono::milliseconds deadline) {
  auto self = state_;
  // Every ping shares one reply: the first pong to any of them means ready.
  auto reply = std::make_shared<Reply>(self->executor());
  std::vector<std::uint32_t> streams;
  const auto end = Clock::now() + deadline;
  Result<void> result =
      Fail(ErrorCode::kTimeout, "wait for the guest agent: no answer within " + Millis(deadline));
  while (true) {
    if (self->closed) {
      result = Fail(self->ClosedError("wait for the guest agent"));
      break;
    }
    auto now = Clock::now();
    if (now >= end) break;
    std::uint32_t stream = self->Register(Call{reply, nullptr, nullptr});
    streams.push_back(stream);
    if (auto sent = self->Send(protocol::PingFrame(stream), "ping"); !sent) {
      result = Fail(sent.error());
      break;
    }
    auto got = co_await reply->Wait(std::min<Clock::duration>(kReadyPingInterval, end - now));
    if (got) {
      auto checked = ReplyOrError(std::move(*got), "wait for the guest agent");
      result = checked ? Result<void>{} : Result<void>(Fail(checked.error()));
      break;
    }
  }
  for (std::uint32_t stream : streams) self->Forget(stream);
  co_return result;
}

asio::awaitable<Result<std::shared_ptr<ExecStream>>> GuestChannel::StartExec(
    protocol::ExecRequest request) {
  auto self = state_;
  std::string what = "exec " + (request.argv.empty() ? std::string() : request.argv[0]);
  if (request.argv.empty()) co_return Fail(ErrorCode::kInvalidArgument, "exec: argv is empty");
  if (self->closed) co_return Fail(self->ClosedError(what));

  // stdin rides in the exec frame as far as the guest's window allows; a
  // feeder sends the rest as the command reads it. A streamed stdin starts
  // within the window, or the feeder and the caller would both write it.
  const std::string& input = request.stdin_data;
  const std::uint64_t window = protocol::kStdinWindowBytes;
  if (request.stream_stdin && input.size() > window) {
    co_return Fail(ErrorCode::kInvalidArgument,
                   what + ": stdin given up front is larger than the guest's window of " +
                       std::to_string(window) + " bytes; stream it all instead");
  }
  const std::size_t first = std::min<std::size_t>(input.size(), window);
  const bool eof_in_frame = first == input.size() && !request.stream_stdin;

  auto started = std::make_shared<Pending<Result<void>>>(self->executor());
  ExecStream::Options options;
  options.what = what;
  options.output_window = self->output_window;
  options.stdin_in_flight = first;
  options.stdin_closed = eof_in_frame;
  options.grace = self->exec_grace;
  // The stream's hooks find the channel (and their call) only while both
  // exist: the stream may outlive them.
  std::weak_ptr<State> weak = self;
  auto stream_id = std::make_shared<std::uint32_t>(0);
  ExecStream::Producer producer;
  producer.output_taken = [weak, stream_id](std::uint64_t bytes) {
    auto channel = weak.lock();
    if (channel && channel->calls.contains(*stream_id)) {
      (void)channel->Send(protocol::OutputAckFrame(*stream_id, bytes), "output ack");
    }
  };
  producer.send_stdin = [weak, stream_id, what](std::string_view data, bool eof) -> Result<void> {
    auto channel = weak.lock();
    if (!channel) return Fail(ErrorCode::kUnavailable, what + ": the guest channel is gone");
    return channel->Send(protocol::StdinFrame(*stream_id, data, eof), what);
  };
  producer.signal = [weak, stream_id](int signal) {
    auto channel = weak.lock();
    if (channel && channel->calls.contains(*stream_id)) {
      (void)channel->Send(protocol::SignalFrame(*stream_id, signal), "signal");
    }
  };
  producer.resize = [weak, stream_id](protocol::TerminalSize size) {
    auto channel = weak.lock();
    if (channel && channel->calls.contains(*stream_id)) {
      (void)channel->Send(protocol::ResizeFrame(*stream_id, size), "resize");
    }
  };
  producer.abandon = [weak, stream_id] {
    if (auto channel = weak.lock()) channel->Abandon(*stream_id);
  };
  auto exec = std::make_shared<ExecStream>(self->executor(), options, std::move(producer));
  *stream_id = self->Register(Call{nullptr, started, exec, what});
  const std::uint32_t stream = *stream_id;

  if (auto sent = self->Send(protocol::ExecFrame(stream, request, std::string_view(input).substr(0, first),
                                                 eof_in_frame, self->output_window),
                             what);
      !sent) {
    self->Forget(stream);
    co_return Fail(sent.error());
  }
  auto got = co_await started->Wait(self->request_timeout);
  if (!got) {
    self->Abandon(stream);
    co_return Fail(ErrorCode::kTimeout, what + ": the guest agent did not start it within " +
                                            Millis(self->request_timeout));
  }
  if (!*got) {
    self->Forget(stream);
    co_return Fail(got->error());
  }
  if (request.timeout.count() > 0) {
    exec->set_give_up_at(Clock::now() + request.timeout + self->exec_grace);
  }
  if (first < input.size()) {
    // Owns its copy of the rest: the request goes out of scope on return.
    SpawnDetached(self->executor(), FeedStdin(exec, input.substr(first)), what + ": stdin");
  }
  co_return exec;
}

asio::awaitable<Result<protocol::ExecResult>> GuestChannel::Exec(protocol::ExecRequest request,
                                                                 protocol::OutputSink sink) {
  auto exec = co_await StartExec(std::move(request));
  if (!exec) co_return Fail(exec.error());
  while (true) {
    std::optional<ExecOutput> chunk = co_await (*exec)->NextOutput();
    if (!chunk) break;
    if (sink) sink(chunk->stream, chunk->data);
  }
  co_return (*exec)->result();
}

asio::awaitable<Result<void>> GuestChannel::WriteFileChunk(std::string path, std::string data, std::uint64_t offset,
                                                           bool truncate, std::uint32_t mode) {
  co_return co_await WriteChunk(state_, std::move(path), std::move(data), offset, truncate, mode);
}

asio::awaitable<Result<protocol::FileChunk>> GuestChannel::ReadFileChunk(std::string path, std::uint64_t offset,
                                                                         std::uint64_t length) {
  co_return co_await ReadChunk(state_, std::move(path), offset, length);
}

asio::awaitable<Result<void>> GuestChannel::WriteChunk(std::shared_ptr<State> self, std::string path,
                                                       std::string data, std::uint64_t offset, bool truncate,
                                                       std::uint32_t mode) {
  std::string what = "write " + path;
  protocol::WriteFileRequest request{path, mode, offset, truncate};
  auto reply = co_await State::RoundTrip(
      self, [&](std::uint32_t stream) { return protocol::WriteFileFrame(stream, request, data); },
      self->request_timeout, what);
  if (!reply) co_return Fail(reply.error());
  if (reply->type != protocol::kTypeOk) co_return Unexpected(what, *reply);
  co_return Result<void>{};
}

asio::awaitable<Result<protocol::FileChunk>> GuestChannel::ReadChunk(std::shared_ptr<State> self,
                                                                     std::string path, std::uint64_t offset,
                                                                     std::uint64_t length) {
  std::string what = "read " + path;
  protocol::ReadFileRequest request{path, offset, length};
  auto reply = co_await State::RoundTrip(
      self, [&](std::uint32_t stream) { return protocol::ReadFileFrame(stream, request); }, self->request_timeout,
      what);
  if (!reply) co_return Fail(reply.error());
  if (reply->type != protocol::kTypeData) co_return Unexpected(what, *reply);
  auto info = protocol::ParseData(*reply);
  if (!info) co_return Fail(ErrorCode::kInternal, what + ": " + info.error());
  if (reply->payload.size() > length) {
    co_return Fail(ErrorCode::kInternal, what + ": the guest sent more than was asked for");
  }
  co_return protocol::FileChunk{*info, std::move(reply->payload)};
}

asio::awaitable<Result<void>> GuestChannel::WriteFile(std::string path, std::string data,
                                                      std::uint32_t mode) {
  auto self = state_;
  std::size_t offset = 0;
  do {
    std::string chunk = data.substr(offset, protocol::kFileChunkBytes);
    const std::size_t size = chunk.size();
    auto written = co_await WriteChunk(self, path, std::move(chunk), offset, offset == 0, mode);
    if (!written) co_return written;
    offset += size;
  } while (offset < data.size());
  co_return Result<void>{};
}

asio::awaitable<Result<std::string>> GuestChannel::ReadFile(std::string path,
                                                            std::size_t max_bytes) {
  auto self = state_;
  std::string what = "read " + path;
  auto too_large = [&](std::uint64_t size) {
    return Fail(ErrorCode::kTooLarge, what + ": " + std::to_string(size) +
                                          " bytes is more than the limit of " +
                                          std::to_string(max_bytes));
  };
  std::string content;
  while (true) {
    // One byte past the limit tells "exactly max_bytes" from "more".
    std::uint64_t room = max_bytes - content.size();
    std::uint64_t length = std::min<std::uint64_t>(protocol::kFileChunkBytes, room + 1);
    auto chunk = co_await ReadChunk(self, path, content.size(), length);
    if (!chunk) co_return Fail(chunk.error());
    if (chunk->info.size > max_bytes) co_return too_large(chunk->info.size);
    if (chunk->data.size() > room) co_return too_large(content.size() + chunk->data.size());
    content += chunk->data;
    if (chunk->info.eof || chunk->data.empty()) break;
  }
  co_return content;
}

asio::awaitable<Result<void>> GuestChannel::Configure(GuestIdentity identity,
                                                      std::chrono::milliseconds timeout) {
  const std::string what = "configure";
  if (identity.entropy.empty()) {
    identity.entropy.resize(kConfigureEntropyBytes);
    std::size_t got = 0;
    while (got < identity.entropy.size()) {
      ssize_t n = ::getrandom(identity.entropy.data() + got, identity.entropy.size() - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) co_return Fail(ErrnoError(what + ": getrandom", errno));
      got += static_cast<std::size_t>(n);
    }
  }
  if (!identity.time_unix_ns) {
    identity.time_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  }
  if (auto bad = protocol::CheckIdentity(identity)) {
    co_return Fail(ErrorCode::kInvalidArgument, what + ": " + *bad);
  }
  std::function<Frame(std::uint32_t)> build = [&identity](std::uint32_t stream) {
    return protocol::ConfigureFrame(stream, identity);
  };
  auto reply = co_await State::RoundTrip(state_, std::move(build), timeout, what);
  if (!reply) co_return Fail(reply.error());
  if (reply->type != protocol::kTypeOk) co_return Unexpected(what, *reply);
  co_return Result<void>{};
}

asio::awaitable<Result<void>> GuestChannel::Shutdown(std::chrono::milliseconds timeout) {
  auto reply = co_await State::RoundTrip(
      state_, [](std::uint32_t stream) { return protocol::ShutdownFrame(stream); }, timeout,
      "shutdown");
  if (!reply) co_return Fail(reply.error());
  if (reply->type != protocol::kTypeOk) co_return Unexpected("shutdown", *reply);
  co_return Result<void>{};
}

}  // namespace agentvm
