#include "supervisor/api/http_connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <functional>
#include <chrono>
#include <limits>
#include <optional>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "common/logging.h"
#include "common/rfc3339.h"
#include "common/spawn.h"
#include "supervisor/api/exec_websocket.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::awaitable;
using Stream = ApiStream;

class Connection : public Responder, public BodySource, public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerContext> context, asio::local::stream_protocol::socket socket)
      : context_(std::move(context)), stream_(std::move(socket)) {}

  awaitable<void> Run();

  awaitable<bool> Send(HttpResponse response) override;
  awaitable<bool> BeginStream(int status, std::string content_type) override;
  awaitable<bool> WriteChunk(std::string data) override;
  awaitable<bool> EndStream() override;
  void Abort() override;
  void WatchForClientGone(std::function<void()> on_gone) override;
  awaitable<Result<std::string>> NextBodyChunk() override;

 private:
  // Answers a request whose header or body could not be read, if the error
  // deserves an answer at all; the connection closes afterwards either way.
  awaitable<void> ReplyToReadError(const beast::error_code& ec);
  // `timeout`: how long the client may take to accept the bytes.
  awaitable<bool> Write(auto&& buffers_or_message,
                        std::optional<std::chrono::milliseconds> timeout);
  const ApiOptions& options() const { return context_->options; }

  // Until the client's end is readable; then whether it closed (EOF) rather
  // than sent more (a pipelined request, which is left for later).
  awaitable<void> WatchClose(std::function<void()> on_gone);
  void StopWatching();
  // Ends the connection after the last answer. A client may still be sending
  // a body the server refused unread; closing at once would make its next
  // write fail (EPIPE, or a reset that discards the answer it has not read
  // yet). So the answer is followed by a FIN and the rest of the request is
  // read and dropped, bounded in bytes and time, before the socket closes.
  awaitable<void> LingeringClose();

  // Appends the request's line to the audit log if it changed something.
  void Audit(const std::string& method, const std::string& target, const RouteMatch* match,
             std::chrono::steady_clock::time_point started);

  std::shared_ptr<ServerContext> context_;
  Stream stream_;
  // The peer, from SO_PEERCRED when the connection opened; -1 if unknown.
  std::int64_t peer_uid_ = -1;
  std::int64_t peer_gid_ = -1;
  std::int64_t peer_pid_ = -1;
  bool watching_ = false;
  // The request whose body a streaming handler reads, while it does.
  http::request_parser<http::string_body>* streamed_ = nullptr;
  beast::flat_buffer buffer_;
  std::uint64_t number_ = 0;
  // Of the request being answered.
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool chunked_ = false;
  int status_ = 0;
  bool closed_ = false;
};

awaitable<bool> Connection::Write(auto&& what, std::optional<std::chrono::milliseconds> timeout) {
  if (closed_) co_return false;
  beast::error_code ec;
  if (timeout) {
    stream_.expires_after(*timeout);
  } else {
    stream_.expires_never();
  }
  if constexpr (requires { what.version(); }) {
    co_await http::async_write(stream_, what, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(stream_, what, asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) {
    Logger("api")->debug("connection {}: write failed: {}", number_, ec.message());
    Abort();
    co_return false;
  }
  co_return true;
}

awaitable<bool> Connection::Send(HttpResponse response) {
  http::response<http::string_body> message{static_cast<http::status>(response.status), version_};
  message.set(http::field::server, "agentvmd");
  if (!response.content_type.empty()) message.set(http::field::content_type, response.content_type);
  if (!response.allow.empty()) message.set(http::field::allow, response.allow);
  message.keep_alive(keep_alive_);
  message.body() = std::move(response.body);
  message.prepare_payload();
  status_ = response.status;
  co_return co_await Write(message, options().write_timeout);
}

awaitable<bool> Connection::BeginStream(int status, std::string content_type) {
  // HTTP/1.0 has no chunked encoding: the body then ends when the
  // connection does.
  chunked_ = version_ >= 11;
  if (!chunked_) keep_alive_ = false;
  http::response<http::empty_body> message{static_cast<http::status>(status), version_};
  message.set(http::field::server, "agentvmd");
  message.set(http::field::content_type, content_type);
  message.set(http::field::cache_control, "no-store");
  message.keep_alive(keep_alive_);
  if (chunked_) message.chunked(true);
  status_ = status;
  http::response_serializer<http::empty_body> serializer{message};
  if (closed_) co_return false;
  beast::error_code ec;
  stream_.expires_after(options().write_timeout);
  co_await http::async_write_header(stream_, serializer,
                                    asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    Abort();
    co_return false;
  }
  co_return true;
}

awaitable<bool> Connection::WriteChunk(std::string data) {
  if (data.empty()) co_return !closed_;  // an empty chunk would end the body
  // No write timeout: a client reading a stream slowly (a pager, a
  // throttled pipe) holds the command back, which is what it asked for; a
  // client that is gone fails the write at once.
  if (chunked_) {
    auto chunk = http::make_chunk(asio::buffer(data));
    co_return co_await Write(chunk, std::nullopt);
  }
  auto raw = asio::buffer(data);
  co_return co_await Write(raw, std::nullopt);
}

awaitable<bool> Connection::EndStream() {
  if (!chunked_) {
    keep_alive_ = false;
    co_return !closed_;
  }
  auto last = http::make_chunk_last();
  co_return co_await Write(last, options().write_timeout);
}

void Connection::WatchForClientGone(std::function<void()> on_gone) {
  if (closed_ || watching_) return;
  watching_ = true;
  SpawnDetached(stream_.get_executor(), [](std::shared_ptr<Connection> self, std::function<void()> on_gone)
                    -> awaitable<void> { co_await self->WatchClose(std::move(on_gone)); }(shared_from_this(),
                                                                                           std::move(on_gone)),
                "watch an exec client");
}

awaitable<Result<std::string>> Connection::NextBodyChunk() {
  if (!streamed_) co_return Fail(ErrorCode::kInternal, "no request body to read");
  while (!streamed_->is_done()) {
    beast::error_code ec;
    // No timeout: stdin may pause for as long as its writer does.
    stream_.expires_never();
    co_await http::async_read_some(stream_, buffer_, *streamed_, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Fail(ErrorCode::kUnavailable, "the client's request body ended early: " + ec.message());
    std::string& body = streamed_->get().body();
    if (!body.empty()) {
      std::string chunk = std::move(body);
      body.clear();
      co_return chunk;
    }
  }
  co_return std::string();
}

void Connection::StopWatching() {
  if (!watching_) return;
  watching_ = false;
  // Ends the pending wait; no read or write is pending between requests.
  beast::error_code ignored;
  stream_.socket().cancel(ignored);
}

awaitable<void> Connection::WatchClose(std::function<void()> on_gone) {
  beast::error_code ec;
  co_await stream_.socket().async_wait(asio::socket_base::wait_read, asio::redirect_error(asio::use_awaitable, ec));
  const bool still_watching = watching_;
  watching_ = false;
  if (ec || !still_watching || closed_) co_return;  // cancelled: the response is over
  char byte;
  ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) on_gone();
}

void Connection::Abort() {
  // Also ends a lingering close (closed_ already set) at once.
  if (!stream_.socket().is_open()) return;
  closed_ = true;
  beast::error_code ignored;
  stream_.socket().shutdown(asio::socket_base::shutdown_both, ignored);
  stream_.close();
}

awaitable<void> Connection::LingeringClose() {
  if (closed_) co_return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(asio::socket_base::shutdown_send, ec);
  // A well-behaved client finishes its request within this; a hostile one
  // holds the connection no longer than it, nor makes the server read more.
  constexpr std::size_t kMaxDiscard = 1 << 20;
  constexpr auto kMaxLinger = std::chrono::seconds(1);
  std::array<char, 16 * 1024> scratch;
  std::size_t discarded = 0;
  stream_.expires_after(kMaxLinger);
  while (!ec && discarded < kMaxDiscard) {
    discarded += co_await stream_.async_read_some(asio::buffer(scratch),
                                                  asio::redirect_error(asio::use_awaitable, ec));
  }
  stream_.close();
}

awaitable<void> Connection::ReplyToReadError(const beast::error_code& ec) {
  auto log = Logger("api");
  keep_alive_ = false;
  if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset || ec == asio::error::eof) {
    co_return;
  }
  if (ec == beast::error::timeout) {
    log->info("connection {}: client too slow sending its request; closing", number_);
    co_return;
  }
  std::optional<HttpResponse> response;
  if (ec == http::error::header_limit) {
    response = ErrorResponse(431, Error{ErrorCode::kTooLarge,
                                        "request header larger than " +
                                            std::to_string(options().max_header_bytes) + " bytes"});
  } else if (ec == http::error::body_limit) {
    response = ErrorResponse(Error{ErrorCode::kTooLarge, "request body too large"});
  } else if (ec.category() == http::make_error_code(http::error::bad_target).category() ||
             ec == http::error::partial_message) {
    response = ErrorResponse(
        400, Error{ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message()});
  }
  if (response) {
    co_await Send(std::move(*response));
    co_return;
  }
  log->debug("connection {}: read failed: {}", number_, ec.message());
}

void Connection::Audit(const std::string& method, const std::string& target, const RouteMatch* match,
                       std::chrono::steady_clock::time_point started) {
  if (!context_->audit) return;
  // Every method but GET changes something; so does the one GET that runs
  // a command, the interactive exec.
  const bool changes = method != "GET" && method != "HEAD";
  if (!changes && !(match && match->route == Route::kExecInteractive)) return;
  context_->audit->Write(AuditRecord{
      .time_ms = UnixMillisNow(),
      .uid = peer_uid_,
      .gid = peer_gid_,
      .pid = peer_pid_,
      .method = method,
      .path = target.substr(0, target.find('?')),  // the query may carry an exec request
      .route = match ? std::string(RouteName(match->route)) : "",
      .vm = match ? match->vm_id : "",
      .status = status_,
      .duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                         .count(),
  });
}

awaitable<void> Connection::Run() {
  auto log = Logger("api");
  number_ = context_->next_connection++;
  ucred peer{};
  socklen_t peer_size = sizeof peer;
  if (::getsockopt(stream_.socket().native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_size) == 0) {
    peer_uid_ = peer.uid;
    peer_gid_ = peer.gid;
    peer_pid_ = peer.pid;
  }
  std::weak_ptr<Connection> weak = weak_from_this();
  context_->connections[number_] = [weak] {
    if (auto self = weak.lock()) self->Abort();
  };

  while (!closed_) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(options().max_header_bytes);
    // The route-specific limit is applied once the route is known (Beast
    // checks a Content-Length against the limit with the header already,
    // and some routes stream bodies of any size). Not boost::none: Boost
    // 1.74 compares a Content-Length against it as "more than none".
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    version_ = 11;
    keep_alive_ = false;
    chunked_ = false;
    status_ = 0;

    beast::error_code ec;
    stream_.expires_after(options().header_timeout);
    context_->waiting_since[number_] = std::chrono::steady_clock::now();
    co_await http::async_read_header(stream_, buffer_, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    context_->waiting_since.erase(number_);
    if (ec) {
      co_await ReplyToReadError(ec);
      break;
    }
    auto started = std::chrono::steady_clock::now();
    const auto& header = parser.get();
    version_ = header.version();
    keep_alive_ = header.keep_alive();
    std::string method(header.method_string());
    std::string target(header.target());
    bool has_body = parser.chunked() || parser.content_length().value_or(0) > 0;

    auto match = MatchRoute(method, target);
    if (match && peer_uid_ >= 0 && peer_gid_ >= 0) {
      match->caller = UserIds{.uid = static_cast<std::uint32_t>(peer_uid_), .gid = static_cast<std::uint32_t>(peer_gid_)};
    }
    if (!match) {
      // The body is not read, so the connection cannot be reused.
      if (has_body) keep_alive_ = false;
      HttpResponse response = ErrorResponse(match.error().http_status, match.error().error);
      response.allow = match.error().allow;
      co_await Send(std::move(response));
    } else if (HasStreamedBody(*match)) {
      // The body is the handler's to read, as it arrives: no limit beyond
      // the request's own first line.
      parser.body_limit(boost::none);
      if (has_body && beast::iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> proceed{http::status::continue_, version_};
        if (!co_await Write(proceed, options().write_timeout)) break;
      }
      streamed_ = &parser;
      stream_.expires_never();
      co_await context_->handlers.HandleStreamedBody(*match, *this, *this);
      streamed_ = nullptr;
      if (!parser.is_done()) keep_alive_ = false;
    } else if (match->route == Route::kExecInteractive) {
      // The connection becomes the exec's WebSocket (or answers why not) and
      // is never reused for HTTP.
      keep_alive_ = false;
      if (has_body || !websocket::is_upgrade(parser.get())) {
        HttpResponse response = ErrorResponse(
            400, Error{ErrorCode::kInvalidArgument,
                       "GET " + QuoteForError(target) +
                           " is an interactive exec: it needs a WebSocket upgrade (POST runs a command over NDJSON)"});
        co_await Send(std::move(response));
      } else {
        status_ = 101;
        co_await ServeExecWebSocket(context_->handlers.service(), stream_, parser.release(), *match, *this);
      }
    } else {
      bool big = match->route == Route::kExec;
      std::size_t limit = big ? options().max_body_bytes : options().max_json_body_bytes;
      if (parser.content_length().value_or(0) > limit) {
        // Refused unread: the connection closes after the answer.
        keep_alive_ = false;
        HttpResponse response = ErrorResponse(
            Error{ErrorCode::kTooLarge, "request body larger than " + std::to_string(limit) + " bytes"});
        co_await Send(std::move(response));
      } else {
        parser.body_limit(limit);
        if (has_body && beast::iequals(header[http::field::expect], "100-continue")) {
          http::response<http::empty_body> proceed{http::status::continue_, version_};
          if (!co_await Write(proceed, options().write_timeout)) break;
        }
        if (!parser.is_done()) {
          stream_.expires_after(options().read_timeout);
          co_await http::async_read(stream_, buffer_, parser,
                                    asio::redirect_error(asio::use_awaitable, ec));
        }
        if (ec) {
          co_await ReplyToReadError(ec);  // sets keep_alive_ = false
        } else {
          stream_.expires_never();
          co_await context_->handlers.Handle(*match, std::move(parser.get().body()), *this);
          StopWatching();
        }
      }
    }

    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    auto level = status_ >= 500 ? spdlog::level::warn : spdlog::level::debug;
    log->log(level, "{} {} -> {} ({} ms)", method, QuoteForError(target), status_,
             elapsed.count());
    Audit(method, target, match ? &*match : nullptr, started);
    if (!keep_alive_) break;
  }

  co_await LingeringClose();
  context_->connections.erase(number_);
  context_->waiting_since.erase(number_);
}

awaitable<void> Serve(std::shared_ptr<Connection> connection) { co_await connection->Run(); }

}  // namespace

void SpawnConnection(std::shared_ptr<ServerContext> context,
                     asio::local::stream_protocol::socket socket) {
  auto executor = socket.get_executor();
  auto connection = std::make_shared<Connection>(std::move(context), std::move(socket));
  SpawnDetached(executor, Serve(std::move(connection)), "connection", Logger("api"));
}

}  // namespace agentvm::api
