#include "supervisor/api/metrics_server.h"

#include <map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/logging.h"
#include "common/spawn.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

http::response<http::string_body> TextResponse(http::status status, std::string text) {
  http::response<http::string_body> response{status, 11};
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.body() = std::move(text) + "\n";
  return response;
}

}  // namespace

struct MetricsServer::State {
  State(asio::io_context& io, VmService& service, MetricsServerOptions options)
      : service(service), options(std::move(options)), acceptor(io) {}

  VmService& service;
  MetricsServerOptions options;
  tcp::acceptor acceptor;
  bool listening = false;
  // The open connections, closed by Stop().
  std::map<std::uint64_t, std::weak_ptr<beast::tcp_stream>> connections;
  std::uint64_t next_connection = 0;
};

namespace {

// One request, one answer, then the connection closes.
awaitable<void> Serve(std::shared_ptr<MetricsServer::State> state, std::uint64_t number,
                      std::shared_ptr<beast::tcp_stream> stream) {
  stream->expires_after(state->options.timeout);
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(state->options.max_header_bytes);
  boost::system::error_code ec;
  co_await http::async_read(*stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
      ec == asio::error::eof) {
    state->connections.erase(number);
    co_return;  // nothing (whole) was asked
  }
  const bool scrape = !ec && parser.get().target() == "/metrics" && parser.get().method() == http::verb::get;
  Result<std::string> text = Fail(ErrorCode::kInvalidArgument, "not a scrape");
  if (scrape) text = co_await state->service.MetricsText();
  http::response<http::string_body> response;
  if (ec) {
    response = TextResponse(http::status::bad_request, "bad request: " + ec.message());
  } else if (parser.get().target() != "/metrics") {
    response = TextResponse(http::status::not_found, "only GET /metrics is served here");
  } else if (!scrape) {
    response = TextResponse(http::status::method_not_allowed, "only GET /metrics is served here");
    response.set(http::field::allow, "GET");
  } else if (!text) {
    response = TextResponse(http::status::internal_server_error, text.error().message);
  } else {
    response.result(http::status::ok);
    response.set(http::field::content_type, kMetricsContentType);
    response.body() = std::move(*text);
  }
  response.keep_alive(false);
  response.prepare_payload();
  co_await http::async_write(*stream, response, asio::redirect_error(asio::use_awaitable, ec));
  stream->socket().shutdown(tcp::socket::shutdown_send, ec);
  state->connections.erase(number);
}

awaitable<void> AcceptLoop(std::shared_ptr<MetricsServer::State> state) {
  auto log = Logger("metrics");
  auto executor = co_await asio::this_coro::executor;
  while (state->listening) {
    boost::system::error_code ec;
    tcp::socket socket = co_await state->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!state->listening || ec == asio::error::operation_aborted) break;
    if (ec) {
      log->warn("accept failed: {}", ec.message());  // EMFILE and friends: back off
      asio::steady_timer pause(executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (state->connections.size() >= state->options.max_connections) {
      log->warn("refusing a metrics connection: {} already open", state->connections.size());
      continue;  // `socket` closes here
    }
    const std::uint64_t number = state->next_connection++;
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    state->connections[number] = stream;
    SpawnDetached(executor, Serve(state, number, std::move(stream)), "metrics connection", log);
  }
}

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, VmService& service, MetricsServerOptions options)
    : io_(io), state_(std::make_shared<State>(io, service, std::move(options))) {}

MetricsServer::~MetricsServer() { Stop(); }

Result<void> MetricsServer::Start() {
  const auto& address = state_->options;
  boost::system::error_code ec;
  const tcp::endpoint endpoint(asio::ip::make_address(address.host, ec), address.port);
  if (ec) return Fail(ErrorCode::kInvalidArgument, "metrics_listen: bad address " + address.host);
  auto& acceptor = state_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor.close();
    return Fail(ErrorCode::kUnavailable, "metrics_listen: cannot listen on " + address.host + ":" +
                                             std::to_string(address.port) + ": " + ec.message());
  }
  state_->listening = true;
  auto log = Logger("metrics");
  SpawnDetached(io_, AcceptLoop(state_), "metrics accept loop", log);
  log->info("serving GET /metrics on {}:{}", address.host, port());
  if (!endpoint.address().is_loopback()) {
    log->warn("metrics_listen {} is not a loopback address: whoever can reach it reads the VMs' ids and counters",
              address.host);
  }
  return {};
}

void MetricsServer::Stop() {
  if (!state_->listening) return;
  state_->listening = false;
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
  auto connections = state_->connections;  // a closing connection erases its own entry
  for (auto& [number, weak] : connections) {
    if (auto stream = weak.lock()) stream->close();
  }
}

std::uint16_t MetricsServer::port() const {
  boost::system::error_code ec;
  auto endpoint = state_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

}  // namespace agentvm::api
