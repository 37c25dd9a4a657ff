#include "supervisor/guest_channel.h"

#include <signal.h>
#include <sys/random.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
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
#include "guest-images/agent/protocol/frame.h"
#include "guest-images/agent/protocol/messages.h"

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

// One request in flight, keyed by its stream id.
struct Call {
  std::shared_ptr<Reply> reply;            // the terminal frame, or the connection's end
  std::shared_ptr<Pending<bool>> started;  // exec: set by "started" or anything terminal
  protocol::OutputSink sink;               // exec: stdout and stderr
};

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

}  // namespace

ErrorCode ErrorCodeFromName(std::string_view name) {
  for (ErrorCode code :
       {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kConflict,
        ErrorCode::kTimeout, ErrorCode::kUnavailable, ErrorCode::kTooLarge, ErrorCode::kInternal}) {
    if (ErrorCodeName(code) == name) return code;
  }
  return ErrorCode::kInternal;
}

struct GuestChannel::State : std::enable_shared_from_this<GuestChannel::State> {
  State(Socket s, std::string id)
      : socket(std::move(s)), vm_id(std::move(id)), log(Logger("guest")) {}

  Socket socket;
  std::string vm_id;
  std::shared_ptr<spdlog::logger> log;
  protocol::FrameDecoder decoder;
  std::uint32_t next_stream = 1;
  std::unordered_map<std::uint32_t, Call> calls;
  std::deque<std::string> outbox;  // encoded frames; front() may be in flight
  bool writing = false;
  bool reading = false;
  bool closed = false;
  std::optional<Error> close_error;
  std::function<void(const Error&)> on_closed;
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds exec_grace{5000};

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
    outbox.push_back(std::move(bytes));
    if (!writing) {
      writing = true;
      asio::co_spawn(executor(), WriteLoop(shared_from_this()), asio::detached);
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
    if (!writing) outbox.clear();
    auto pending = std::move(calls);
    calls.clear();
    for (auto& [stream, call] : pending) {
      if (call.started) call.started->Set(true);
      call.reply->Set(Fail(error));
    }
    log->info("{}: guest channel closed: {}", vm_id, error.message);
    if (on_closed) {
      auto callback = std::move(on_closed);
      on_closed = nullptr;
      callback(error);
    }
  }

  void Dispatch(Frame frame) {
    if (frame.stream == 0) {
      // Connection-level: the agent refused one of our frames.
      auto error = protocol::ParseError(frame);
      log->warn("{}: guest agent on stream 0: {} {}", vm_id, frame.type,
                error ? error->code + ": " + error->message : std::string());
      return;
    }
    auto it = calls.find(frame.stream);
    if (it == calls.end()) {
      // A reply to a call that timed out, or output of an exec given up on.
      log->debug("{}: dropped late \"{}\" frame on stream {}", vm_id, frame.type, frame.stream);
      return;
    }
    Call& call = it->second;
    const std::string& type = frame.type;
    if (type == protocol::kTypeStarted) {
      if (call.started) call.started->Set(true);
    } else if (type == protocol::kTypeStdout || type == protocol::kTypeStderr) {
      if (!call.sink) return;
      auto which = type == protocol::kTypeStdout ? protocol::OutputStream::kStdout
                                                 : protocol::OutputStream::kStderr;
      try {
        call.sink(which, frame.payload);
      } catch (const std::exception& e) {
        log->warn("{}: output sink of stream {} threw: {}", vm_id, frame.stream, e.what());
      }
    } else if (IsTerminal(type)) {
      Call done = std::move(call);
      calls.erase(it);
      if (done.started) done.started->Set(true);
      done.reply->Set(std::move(frame));
    } else {
      log->warn("{}: unexpected \"{}\" frame on stream {}", vm_id, type, frame.stream);
    }
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
      self->outbox.pop_front();
    }
    self->writing = false;
    if (self->closed) self->outbox.clear();
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
            // Refused and skipped by the decoder; tell the agent, keep serving.
            self->log->warn("{}: refused a frame from the guest: {}", self->vm_id, error->message);
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

GuestChannel::GuestChannel(Socket socket, std::string vm_id)
    : state_(std::make_shared<State>(std::move(socket), std::move(vm_id))) {}

GuestChannel::~GuestChannel() {
  state_->on_closed = nullptr;
  Close();
}

void GuestChannel::Start() {
  if (state_->reading || state_->closed) return;
  state_->reading = true;
  asio::co_spawn(state_->executor(), State::ReadLoop(state_), asio::detached);
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

asio::awaitable<Result<protocol::ExecResult>> GuestChannel::Exec(protocol::ExecRequest request,
                                                                 protocol::OutputSink sink) {
  auto self = state_;
  std::string what = "exec " + (request.argv.empty() ? std::string() : request.argv[0]);
  if (request.argv.empty()) co_return Fail(ErrorCode::kInvalidArgument, "exec: argv is empty");
  if (self->closed) co_return Fail(self->ClosedError(what));

  auto reply = std::make_shared<Reply>(self->executor());
  auto started = std::make_shared<Pending<bool>>(self->executor());
  std::uint32_t stream = self->Register(Call{reply, started, std::move(sink)});
  // stdin rides in the exec frame up to one chunk; the rest follows in
  // "stdin" frames so no frame nears the limit.
  std::string_view input = request.stdin_data;
  const std::size_t chunk = protocol::kFileChunkBytes;
  std::size_t first = std::min(input.size(), chunk);
  auto sent = self->Send(
      protocol::ExecFrame(stream, request, input.substr(0, first), first == input.size()), what);
  for (std::size_t offset = first; sent && offset < input.size(); offset += chunk) {
    sent = self->Send(
        protocol::StdinFrame(stream, input.substr(offset, chunk), offset + chunk >= input.size()),
        what);
  }
  if (!sent) {
    self->Forget(stream);
    co_return Fail(sent.error());
  }

  auto kill_abandoned = [self, stream] {
    self->Forget(stream);
    (void)self->Send(protocol::SignalFrame(stream, SIGKILL), "signal");
  };
  if (!co_await started->Wait(self->request_timeout)) {
    kill_abandoned();
    co_return Fail(ErrorCode::kTimeout, what + ": the guest agent did not start it within " +
                                            Millis(self->request_timeout));
  }
  std::chrono::milliseconds limit =
      request.timeout.count() > 0 ? request.timeout + self->exec_grace
                                  : std::chrono::duration_cast<std::chrono::milliseconds>(kForever);
  auto got = co_await reply->Wait(limit);
  if (!got) {
    kill_abandoned();
    co_return Fail(ErrorCode::kTimeout,
                   what + ": the guest agent did not report its end within " + Millis(limit));
  }
  auto frame = ReplyOrError(std::move(*got), what);
  if (!frame) co_return Fail(frame.error());
  if (frame->type != protocol::kTypeExit) co_return Unexpected(what, *frame);
  auto result = protocol::ParseExit(*frame);
  if (!result) co_return Fail(ErrorCode::kInternal, what + ": " + result.error());
  co_return *result;
}

asio::awaitable<Result<void>> GuestChannel::WriteFile(std::string path, std::string data,
                                                      std::uint32_t mode) {
  auto self = state_;
  std::string what = "write " + path;
  std::size_t offset = 0;
  do {
    std::string_view chunk = std::string_view(data).substr(offset, protocol::kFileChunkBytes);
    protocol::WriteFileRequest request{path, mode, offset, offset == 0};
    auto reply = co_await State::RoundTrip(
        self,
        [&](std::uint32_t stream) { return protocol::WriteFileFrame(stream, request, chunk); },
        self->request_timeout, what);
    if (!reply) co_return Fail(reply.error());
    if (reply->type != protocol::kTypeOk) co_return Unexpected(what, *reply);
    offset += chunk.size();
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
    protocol::ReadFileRequest request{path, content.size(), length};
    auto reply = co_await State::RoundTrip(
        self, [&](std::uint32_t stream) { return protocol::ReadFileFrame(stream, request); },
        self->request_timeout, what);
    if (!reply) co_return Fail(reply.error());
    if (reply->type != protocol::kTypeData) co_return Unexpected(what, *reply);
    auto info = protocol::ParseData(*reply);
    if (!info) co_return Fail(ErrorCode::kInternal, what + ": " + info.error());
    if (info->size > max_bytes) co_return too_large(info->size);
    if (reply->payload.size() > room) co_return too_large(content.size() + reply->payload.size());
    content += reply->payload;
    if (info->eof || reply->payload.empty()) break;
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
