// FakeQmpPeer: the QEMU side of a QMP connection, scripted by a test
// coroutine (greeting, replies in any order, errors, events, garbage, silence,
// hang-ups). It reads with recvmsg so it also sees fds passed via SCM_RIGHTS.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include "qmp/fd_passing.h"
#include "qmp/qmp_client.h"

namespace agentvm::qmp::testing {

class FakeQmpPeer {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  using json = nlohmann::json;

  explicit FakeQmpPeer(Socket socket) : socket_(std::move(socket)) {}

  Socket& socket() { return socket_; }
  void Close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  // The next line as JSON; nullopt at EOF, on a socket error, or for a line
  // that is not JSON.
  boost::asio::awaitable<std::optional<json>> ReadMessage() {
    std::size_t newline;
    while ((newline = buffer_.find('\n')) == std::string::npos) {
      char chunk[64 * 1024];
      boost::system::error_code ec;
      std::size_t n = co_await ReceiveWithFds(socket_, chunk, fds_, ec);
      if (ec || n == 0) co_return std::nullopt;
      buffer_.append(chunk, n);
    }
    std::string line = buffer_.substr(0, newline);
    buffer_.erase(0, newline + 1);
    json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (message.is_discarded()) co_return std::nullopt;
    co_return message;
  }

  boost::asio::awaitable<bool> SendRaw(std::string_view bytes) {
    boost::system::error_code ec;
    co_await boost::asio::async_write(socket_, boost::asio::buffer(bytes.data(), bytes.size()),
                                      boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    co_return !ec;
  }

  // The helpers below build their message outside any coroutine: g++ 12
  // rejects some braced json initialisers inside coroutine bodies.
  boost::asio::awaitable<bool> Send(json message) {
    co_return co_await SendRaw(message.dump() + "\r\n");  // QEMU ends lines with CRLF
  }

  boost::asio::awaitable<bool> SendGreeting(int major = 7, int minor = 2, int micro = 0) {
    json version = {{"micro", micro}, {"minor", minor}, {"major", major}};
    json greeting = {{"QMP",
                      {{"version", {{"qemu", version}, {"package", "fake"}}},
                       {"capabilities", json::array({"oob"})}}}};
    return Send(std::move(greeting));
  }

  // Greeting, then expects `qmp_capabilities` and acknowledges it. False if
  // the client asked for anything else or hung up.
  boost::asio::awaitable<bool> ServeHandshake(int major = 7, int minor = 2, int micro = 0) {
    if (!co_await SendGreeting(major, minor, micro)) co_return false;
    auto command = co_await ReadMessage();
    if (!command || command->value("execute", "") != "qmp_capabilities") co_return false;
    co_return co_await Reply(*command);
  }

  // Answers `command` (as read by ReadMessage) with its own id.
  boost::asio::awaitable<bool> Reply(const json& command, json value = json::object()) {
    json reply = {{"return", std::move(value)}, {"id", command.value("id", json())}};
    return Send(std::move(reply));
  }

  boost::asio::awaitable<bool> ReplyError(const json& command, std::string qmp_class,
                                          std::string desc) {
    json error = {{"class", std::move(qmp_class)}, {"desc", std::move(desc)}};
    json reply = {{"id", command.value("id", json())}, {"error", std::move(error)}};
    return Send(std::move(reply));
  }

  boost::asio::awaitable<bool> SendEvent(std::string name, json data = nullptr) {
    json event = {{"timestamp", {{"seconds", 1700000000}, {"microseconds", 42}}},
                  {"event", std::move(name)}};
    if (!data.is_null()) event["data"] = std::move(data);
    return Send(std::move(event));
  }

  // Every fd received so far, in arrival order.
  std::vector<UniqueFd>& received_fds() { return fds_; }

 private:
  Socket socket_;
  std::string buffer_;
  std::vector<UniqueFd> fds_;
};

// A client and a fake QEMU joined by a socketpair; the client is not yet
// handshaken.
struct ClientAndPeer {
  std::unique_ptr<QmpClient> client;
  std::unique_ptr<FakeQmpPeer> peer;
};

inline ClientAndPeer MakeClientAndPeer(boost::asio::any_io_executor executor,
                                       std::string log_tag = "vm-test") {
  QmpClient::Socket client_end(executor);
  FakeQmpPeer::Socket peer_end(executor);
  boost::asio::local::connect_pair(client_end, peer_end);
  return {std::make_unique<QmpClient>(std::move(client_end), std::move(log_tag)),
          std::make_unique<FakeQmpPeer>(std::move(peer_end))};
}

}  // namespace agentvm::qmp::testing
