#include "bench/qga_client.h"

#include <random>

#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using json = nlohmann::json;

}  // namespace

asio::awaitable<Result<std::unique_ptr<QgaClient>>> QgaClient::Connect(std::string socket_path,
                                                                       milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto socket = co_await ConnectGuestUnix(socket_path, timeout);
  if (!socket) co_return Fail(socket.error().Wrap("qga"));
  std::unique_ptr<QgaClient> client(new QgaClient(std::move(*socket)));

  // Until qemu-ga opens its port, QEMU leaves what we write in the socket; it
  // then reads the sync first. The random id tells its reply from any other.
  const std::int64_t id = std::random_device()() & 0x7fffffff;
  const std::string sync = json{{"execute", "guest-sync"}, {"arguments", {{"id", id}}}}.dump() + "\n";
  boost::system::error_code ec;
  co_await asio::async_write(client->socket_, asio::buffer(sync), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Fail(ErrorCode::kUnavailable, "qga: write guest-sync: " + ec.message());
  while (true) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= milliseconds(0)) co_return Fail(ErrorCode::kTimeout, "qga: no guest-sync reply in time");
    auto reply = co_await client->ReadReply(left);
    if (!reply) co_return Fail(reply.error().Wrap("qga: guest-sync"));
    if (*reply == json(id)) break;
  }
  co_return client;
}

asio::awaitable<Result<json>> QgaClient::Execute(const std::string& command, json arguments, milliseconds timeout) {
  json request = {{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = std::move(arguments);
  const std::string text = request.dump() + "\n";
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(text), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Fail(ErrorCode::kUnavailable, "qga " + command + ": write: " + ec.message());
  auto reply = co_await ReadReply(timeout);
  if (!reply) co_return Fail(reply.error().Wrap("qga " + command));
  co_return reply;
}

// One reply line: its "return" value, or its "error" as an Error.
asio::awaitable<Result<json>> QgaClient::ReadReply(milliseconds timeout) {
  auto executor = socket_.get_executor();
  asio::steady_timer watchdog(executor, timeout);
  // Shared: an expiry already queued when the read completes runs after this
  // frame has moved on, and must then leave the socket alone.
  struct Watch {
    bool done = false;
    bool timed_out = false;
  };
  auto watch = std::make_shared<Watch>();
  watchdog.async_wait([this, watch](const boost::system::error_code& ec) {
    if (ec || watch->done) return;
    watch->timed_out = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  });
  boost::system::error_code ec;
  const std::size_t n = co_await asio::async_read_until(socket_, asio::dynamic_buffer(buffer_), '\n',
                                                        asio::redirect_error(asio::use_awaitable, ec));
  watch->done = true;
  watchdog.cancel();
  if (watch->timed_out) co_return Fail(ErrorCode::kTimeout, "no reply within " + std::to_string(timeout.count()) + " ms");
  if (ec) co_return Fail(ErrorCode::kUnavailable, "read: " + ec.message());
  const std::string line = buffer_.substr(0, n);
  buffer_.erase(0, n);
  json reply = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.is_object()) co_return Fail(ErrorCode::kInternal, "malformed reply: " + line);
  if (reply.contains("error")) {
    co_return Fail(ErrorCode::kInternal, reply["error"].value("desc", reply["error"].dump()));
  }
  if (!reply.contains("return")) co_return Fail(ErrorCode::kInternal, "reply without \"return\": " + line);
  co_return std::move(reply["return"]);
}

}  // namespace agentvm::bench
