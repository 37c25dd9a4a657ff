#include "supervisor/guest_connector.h"

#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <memory>

namespace agentvm {
namespace {

namespace asio = boost::asio;
using Endpoint = asio::generic::stream_protocol::endpoint;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kRetryInterval{50};

std::string Millis(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// One connect attempt per kRetryInterval until `timeout`; each attempt is
// itself bounded by what is left (a vsock connect to a busy guest can hang).
asio::awaitable<Result<GuestSocket>> ConnectWithRetry(Endpoint endpoint, std::string what,
                                                      std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  const auto deadline = Clock::now() + timeout;
  boost::system::error_code last;
  while (Clock::now() < deadline) {
    // Shared with the timer's handler, which may run after this frame moved on.
    auto socket = std::make_shared<GuestSocket>(executor);
    boost::system::error_code ec;
    socket->open(endpoint.protocol(), ec);
    if (ec) co_return Fail(ErrorCode::kUnavailable, what + ": socket: " + ec.message());

    asio::steady_timer watchdog(executor, deadline);
    watchdog.async_wait([socket](const boost::system::error_code& wait_ec) {
      if (!wait_ec) {
        boost::system::error_code ignored;
        socket->cancel(ignored);
      }
    });
    co_await socket->async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    watchdog.cancel();
    if (!ec) co_return std::move(*socket);
    if (ec == asio::error::operation_aborted) break;
    last = ec;

    asio::steady_timer pause(executor, std::min(Clock::now() + kRetryInterval, deadline));
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return Fail(ErrorCode::kTimeout, what + ": no connection within " + Millis(timeout) +
                                          (last ? " (last error: " + last.message() + ")" : ""));
}

}  // namespace

Endpoint VsockEndpoint(std::uint32_t cid, std::uint32_t port) {
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = cid;
  addr.svm_port = port;
  return Endpoint(&addr, sizeof addr);
}

std::optional<VsockAddress> ParseVsockEndpoint(const Endpoint& endpoint) {
  if (endpoint.size() < sizeof(sockaddr_vm) || endpoint.data()->sa_family != AF_VSOCK) {
    return std::nullopt;
  }
  sockaddr_vm addr;
  std::memcpy(&addr, endpoint.data(), sizeof addr);
  return VsockAddress{addr.svm_cid, addr.svm_port};
}

asio::awaitable<Result<GuestSocket>> ConnectGuestUnix(std::string path,
                                                      std::chrono::milliseconds timeout) {
  std::string what = "connect " + path;
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    co_return Fail(ErrorCode::kInvalidArgument, what + ": not a usable unix socket path");
  }
  Endpoint endpoint{asio::local::stream_protocol::endpoint(path)};
  co_return co_await ConnectWithRetry(endpoint, std::move(what), timeout);
}

asio::awaitable<Result<GuestSocket>> ConnectGuestVsock(std::uint32_t cid, std::uint32_t port,
                                                       std::chrono::milliseconds timeout) {
  std::string what = "connect vsock cid " + std::to_string(cid) + " port " + std::to_string(port);
  co_return co_await ConnectWithRetry(VsockEndpoint(cid, port), std::move(what), timeout);
}

}  // namespace agentvm
