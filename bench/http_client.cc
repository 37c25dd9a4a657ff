#include "bench/http_client.h"

#include <memory>
#include <sstream>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <nlohmann/json.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace agentvm::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Socket = asio::local::stream_protocol::socket;

asio::awaitable<Result<HttpReply>> HttpCall(std::string socket_path, std::string method,
                                            std::string target, std::string body,
                                            std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  const std::string what = method + " " + target;
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) co_return Fail(ErrorCode::kInvalidArgument, what + ": unknown method");

  // Shared with the watchdog, whose handler may run after this frame is gone.
  auto socket = std::make_shared<Socket>(executor);
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer watchdog(executor, timeout);
  watchdog.async_wait([socket, timed_out](const boost::system::error_code& ec) {
    if (ec) return;
    *timed_out = true;
    boost::system::error_code ignored;
    socket->close(ignored);
  });
  auto failed = [&](const boost::system::error_code& ec) {
    if (*timed_out) return Fail(ErrorCode::kTimeout, what + ": no answer within " + std::to_string(timeout.count()) + " ms");
    return Fail(ErrorCode::kUnavailable, what + " on " + socket_path + ": " + ec.message());
  };

  boost::system::error_code ec;
  co_await socket->async_connect(asio::local::stream_protocol::endpoint(socket_path),
                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return failed(ec);

  http::request<http::string_body> request{verb, target, 11};
  request.set(http::field::host, "agentvmd");
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  request.body() = std::move(body);
  request.prepare_payload();
  co_await http::async_write(*socket, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return failed(ec);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  co_await http::async_read(*socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  watchdog.cancel();
  if (ec) co_return failed(ec);
  socket->close(ec);
  co_return HttpReply{static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
}

Result<void> CheckExecSucceeded(const HttpReply& reply) {
  if (reply.status != 200) {
    return Fail(ErrorCode::kInternal, std::to_string(reply.status) + " " + reply.body);
  }
  std::istringstream lines(reply.body);
  std::string line, last;
  while (std::getline(lines, line)) {
    if (!line.empty()) last = line;
  }
  const nlohmann::json exit_event = nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
  if (!exit_event.is_object() || exit_event.value("type", "") != "exit" || exit_event.value("status", -1) != 0) {
    return Fail(ErrorCode::kInternal, "no successful exit event in: " + reply.body);
  }
  return {};
}

}  // namespace agentvm::bench
