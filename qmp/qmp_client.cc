#include "qmp/qmp_client.h"

#include <algorithm>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <fmt/format.h>

#include "common/logging.h"
#include "qmp/qmp_session.h"

namespace agentvm::qmp {
namespace {

using nlohmann::json;
using Kind = QmpError::Kind;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Remaining(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

boost::asio::awaitable<QmpResult<QmpEvent>> WaitForSlot(
    std::shared_ptr<Pending<QmpResult<QmpEvent>>> slot, std::string name,
    std::chrono::milliseconds timeout) {
  if (!slot) co_return QmpFail(Kind::kProtocol, "", "event waiter used twice");
  auto event = co_await slot->Wait(timeout);
  if (!event) {
    co_return QmpFail(Kind::kTimeout, "",
                      fmt::format("no {} event within {} ms", name, timeout.count()));
  }
  co_return std::move(*event);
}

// QEMU creates the socket file only once it listens, and a stale file from an
// earlier run refuses connections: both mean "not yet", not "never".
bool WorthRetrying(const boost::system::error_code& ec) {
  return ec == boost::system::errc::no_such_file_or_directory ||
         ec == boost::system::errc::connection_refused;
}

}  // namespace

boost::asio::awaitable<QmpResult<QmpEvent>> EventWaiter::Wait(std::chrono::milliseconds timeout) {
  return WaitForSlot(std::move(slot_), name_, timeout);
}

boost::asio::awaitable<QmpResult<std::unique_ptr<QmpClient>>> QmpClient::Connect(
    boost::asio::any_io_executor executor, std::string socket_path,
    std::chrono::milliseconds timeout, std::string log_tag) {
  const auto deadline = Clock::now() + timeout;
  boost::asio::local::stream_protocol::endpoint endpoint;
  try {
    endpoint = boost::asio::local::stream_protocol::endpoint(socket_path);
  } catch (const boost::system::system_error& e) {  // path longer than sun_path
    co_return QmpFail(Kind::kConnect, "", fmt::format("connect {}: {}", socket_path, e.what()));
  }

  Socket socket(executor);
  boost::asio::steady_timer timer(executor);
  auto delay = std::chrono::milliseconds(5);
  int attempts = 0;
  for (;;) {
    ++attempts;
    boost::system::error_code ec;
    co_await socket.async_connect(endpoint,
                                  boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (!ec) break;
    boost::system::error_code ignored;
    socket.close(ignored);
    if (!WorthRetrying(ec) || Clock::now() >= deadline) {
      co_return QmpFail(Kind::kConnect, "",
                        fmt::format("connect {}: {} (after {} attempts in {} ms)", socket_path,
                                    ec.message(), attempts, timeout.count()));
    }
    timer.expires_after(std::min<Clock::duration>(delay, deadline - Clock::now()));
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
    delay = std::min(delay * 2, std::chrono::milliseconds(50));
  }

  auto client = std::make_unique<QmpClient>(std::move(socket), std::move(log_tag));
  auto handshake = co_await client->Handshake(Remaining(deadline));
  if (!handshake) co_return std::unexpected(handshake.error());
  co_return std::move(client);
}

QmpClient::QmpClient(Socket connected, std::string log_tag)
    : session_(std::make_shared<internal::QmpSession>(std::move(connected), std::move(log_tag))) {}

QmpClient::~QmpClient() { session_->Close(); }

boost::asio::awaitable<QmpResult<void>> QmpClient::Handshake(std::chrono::milliseconds timeout) {
  return internal::QmpSession::Handshake(session_, timeout);
}

boost::asio::awaitable<QmpResult<json>> QmpClient::Execute(std::string command, json arguments,
                                                           std::chrono::milliseconds timeout) {
  return internal::QmpSession::Execute(session_, std::move(command), std::move(arguments),
                                       UniqueFd(), /*with_fd=*/false, timeout);
}

boost::asio::awaitable<QmpResult<json>> QmpClient::ExecuteWithFd(std::string command,
                                                                 json arguments, int fd,
                                                                 std::chrono::milliseconds timeout) {
  return internal::QmpSession::Execute(session_, std::move(command), std::move(arguments),
                                       UniqueFd::Duplicate(fd), /*with_fd=*/true, timeout);
}

EventWaiter QmpClient::ExpectEvent(std::string name, EventFilter filter) {
  auto slot = session_->AddEventWaiter(name, std::move(filter));
  return EventWaiter(std::move(name), std::move(slot));
}

boost::asio::awaitable<QmpResult<QmpEvent>> QmpClient::WaitForEvent(
    std::string name, std::chrono::milliseconds timeout, EventFilter filter) {
  return ExpectEvent(std::move(name), std::move(filter)).Wait(timeout);
}

int QmpClient::Subscribe(std::function<void(const QmpEvent&)> handler) {
  return session_->Subscribe(std::move(handler));
}

void QmpClient::Unsubscribe(int token) { session_->Unsubscribe(token); }

void QmpClient::OnDisconnect(std::function<void(const QmpError&)> handler) {
  session_->SetOnDisconnect(std::move(handler));
}

bool QmpClient::connected() const { return session_->ready(); }

const std::string& QmpClient::qemu_version() const { return session_->qemu_version(); }

void QmpClient::Close() { session_->Close(); }

}  // namespace agentvm::qmp
