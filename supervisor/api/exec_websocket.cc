#include "supervisor/api/exec_websocket.h"

#include <signal.h>

#include <optional>
#include <string>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "common/logging.h"
#include "common/notifier.h"
#include "common/spawn.h"
#include "supervisor/api/exec_channels.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::awaitable;
using WebSocket = websocket::stream<ApiStream&>;

// The largest message a client may send (a stdin chunk or a resize).
constexpr std::size_t kMaxClientMessageBytes = 1 << 20;

// What the reader and writer coroutines of one session share.
struct Session {
  Session(ApiStream& stream, std::shared_ptr<ExecStream> exec, bool detach)
      : ws(stream), exec(std::move(exec)), detach(detach), reader_done(ws.get_executor()) {}
  WebSocket ws;
  std::shared_ptr<ExecStream> exec;
  const bool detach;  // the command outlives its client
  Notifier reader_done;
  bool reading = true;
  bool client_gone = false;
};

// The subprotocol to answer with: v5 if offered, else v4, else none (the
// framing is the same; only v5 can end stdin).
std::string ChooseSubprotocol(const http::request<http::string_body>& upgrade) {
  std::string offered(upgrade[http::field::sec_websocket_protocol]);
  for (std::string_view wanted : {kChannelProtocolV5, kChannelProtocolV4}) {
    if (offered.find(wanted) != std::string::npos) return std::string(wanted);
  }
  return "";
}

// Client to guest: stdin, resizes, the end of stdin. Each stdin message is
// handed to the guest before the next is read, so a client typing faster
// than the program reads is held back by the socket.
awaitable<void> ReadFromClient(std::shared_ptr<Session> session, std::string vm_id) {
  beast::flat_buffer buffer;
  while (true) {
    beast::error_code ec;
    co_await session->ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      // Gone without the close handshake (or with it while the command
      // runs): unless told to outlive its client, the command ends now,
      // which also ends the writer's wait for its output.
      if (!session->exec->finished() && ec != asio::error::operation_aborted) {
        session->client_gone = true;
        Logger("api")->info("{}: interactive exec client gone; {}", vm_id,
                            session->detach ? "the command keeps running (detach)" : "killing the command");
        if (!session->detach) session->exec->Signal(SIGKILL);
      }
      break;
    }
    std::string message = beast::buffers_to_string(buffer.data());
    buffer.consume(buffer.size());
    auto decoded = DecodeChannelMessage(message);
    if (!decoded) {
      Logger("api")->info("{}: interactive exec: {}", vm_id, decoded.error().message);
      continue;
    }
    switch (decoded->channel) {
      case ExecChannel::kStdin: {
        std::string data(decoded->payload);
        auto sent = co_await session->exec->WriteStdin(std::move(data), false);
        if (!sent) Logger("api")->debug("{}: interactive exec stdin: {}", vm_id, sent.error().message);
        break;
      }
      case ExecChannel::kResize: {
        auto size = ParseResizeJson(decoded->payload);
        if (size) session->exec->Resize(*size);
        break;
      }
      case ExecChannel::kClose:
        if (decoded->payload == std::string_view("\0", 1)) {
          auto closed = co_await session->exec->WriteStdin(std::string(), true);
          if (!closed) Logger("api")->debug("{}: interactive exec stdin close: {}", vm_id, closed.error().message);
        }
        break;
      default:
        break;  // output and status channels are the server's
    }
  }
  session->reading = false;
  session->reader_done.Notify();
}

awaitable<bool> Send(Session& session, ExecChannel channel, std::string_view payload) {
  std::string message = EncodeChannelMessage(channel, payload);
  beast::error_code ec;
  co_await session.ws.async_write(asio::buffer(message), asio::redirect_error(asio::use_awaitable, ec));
  co_return !ec;
}

}  // namespace

awaitable<void> ServeExecWebSocket(VmService& service, ApiStream& stream,
                                   http::request<http::string_body> upgrade, const RouteMatch& match,
                                   Responder& responder) {
  auto request = ParseExecQuery(match.query);
  if (!request) {
    HttpResponse refusal = ErrorResponse(request.error());
    co_await responder.Send(std::move(refusal));
    co_return;
  }
  // Over a WebSocket stdin always streams; the client ends it (v5) or goes.
  request->stream_stdin = true;
  const bool detach = request->detach;
  auto started = co_await service.StartExec(match.vm_id, std::move(*request));
  if (!started) {
    HttpResponse failure = ErrorResponse(started.error());
    co_await responder.Send(std::move(failure));
    co_return;
  }

  auto session = std::make_shared<Session>(stream, std::move(*started), detach);
  session->ws.binary(true);
  session->ws.read_message_max(kMaxClientMessageBytes);
  // Pings a client quiet for 30 s; one that does not answer is gone.
  websocket::stream_base::timeout timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
  timeouts.idle_timeout = std::chrono::seconds(60);
  timeouts.keep_alive_pings = true;
  session->ws.set_option(timeouts);
  const std::string subprotocol = ChooseSubprotocol(upgrade);
  session->ws.set_option(websocket::stream_base::decorator([subprotocol](websocket::response_type& response) {
    response.set(http::field::server, "agentvmd");
    if (!subprotocol.empty()) response.set(http::field::sec_websocket_protocol, subprotocol);
  }));
  stream.expires_never();
  beast::error_code ec;
  co_await session->ws.async_accept(upgrade, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    session->exec->Signal(SIGKILL);
    session->exec->Detach();
    co_return;
  }
  SpawnDetached(session->ws.get_executor(), ReadFromClient(session, match.vm_id),
                match.vm_id + ": interactive exec reader");

  bool delivered = true;
  while (delivered) {
    std::optional<ExecOutput> chunk = co_await session->exec->NextOutput();
    if (!chunk) break;
    ExecChannel channel = chunk->stream == protocol::OutputStream::kStdout ? ExecChannel::kStdout : ExecChannel::kStderr;
    delivered = co_await Send(*session, channel, chunk->data);
  }
  if (delivered) {
    std::string status = ExecStatusJson(session->exec->result());
    if (co_await Send(*session, ExecChannel::kStatus, status)) {
      websocket::close_reason normal(websocket::close_code::normal);
      co_await session->ws.async_close(normal, asio::redirect_error(asio::use_awaitable, ec));
    }
  } else {
    // The client went away: the command ends with it unless it asked to
    // outlive its client; what it still prints goes nowhere.
    if (!detach) session->exec->Signal(SIGKILL);
    session->exec->Detach();
  }
  // The reader uses the socket: it must be done before the stream goes.
  while (session->reading) {
    beast::get_lowest_layer(stream).cancel();
    co_await session->reader_done.Wait();
  }
}

}  // namespace agentvm::api
