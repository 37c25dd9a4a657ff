// QmpClient: an asynchronous client for QEMU's machine protocol over a unix
// socket (`-qmp unix:PATH,server=on,wait=off`).
//
// One background reader per connection parses newline-delimited JSON and
// routes each message: replies to the command with the same id (replies and
// events interleave freely), events to subscribers and waiters. When QEMU goes
// away (EOF, socket error, or a protocol violation) every outstanding command
// completes at once with an error and the on-disconnect handler runs once.
//
// Threading: everything runs on the executor of the socket, which must be a
// single thread (or a strand); there are no locks. Commands may be issued
// concurrently from several coroutines.
//
// Lifetime: the client may be destroyed at any time, also while commands,
// event waits or handlers are in progress: destruction is Close(); coroutines
// still awaiting this client then complete with kDisconnected. Awaitables
// returned by the methods do not refer to the client object itself.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include "common/pending.h"
#include "qmp/qmp_error.h"

namespace agentvm::qmp {

namespace internal {
class QmpSession;
}

struct QmpEvent {
  std::string name;          // "STOP", "SHUTDOWN", "JOB_STATUS_CHANGE", ...
  nlohmann::json data;       // the event's "data", or {} when it has none
  nlohmann::json timestamp;  // {"seconds": ..., "microseconds": ...}
};

// Narrows an event wait, e.g. MIGRATION with data.status "completed". A pure
// predicate: it runs on the reader and must not call into the client.
using EventFilter = std::function<bool(const QmpEvent&)>;

// A registration for the next event of one name, made before the action that
// causes it (QEMU sends STOP *before* the reply to `stop`). Single use.
class EventWaiter {
 public:
  // The event, kTimeout if none came in time, or kDisconnected.
  boost::asio::awaitable<QmpResult<QmpEvent>> Wait(std::chrono::milliseconds timeout);

 private:
  friend class QmpClient;
  using Slot = Pending<QmpResult<QmpEvent>>;
  EventWaiter(std::string name, std::shared_ptr<Slot> slot)
      : name_(std::move(name)), slot_(std::move(slot)) {}

  std::string name_;
  std::shared_ptr<Slot> slot_;
};

class QmpClient {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;

  // A longer line from QEMU is a protocol error and closes the connection.
  static constexpr std::size_t kMaxLineBytes = std::size_t{16} << 20;
  static constexpr std::chrono::milliseconds kDefaultCommandTimeout{10'000};

  // Connects to `socket_path`, retrying while the socket does not exist yet
  // or refuses connections (QEMU still starting), then performs Handshake().
  // `timeout` bounds all of it. `log_tag` (the VM id) prefixes every log line.
  static boost::asio::awaitable<QmpResult<std::unique_ptr<QmpClient>>> Connect(
      boost::asio::any_io_executor executor, std::string socket_path,
      std::chrono::milliseconds timeout, std::string log_tag);

  // Wraps an already connected socket (in tests, one end of a socketpair).
  // Call Handshake() before anything else.
  QmpClient(Socket connected, std::string log_tag);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Reads the greeting (recording the QEMU version), negotiates
  // `qmp_capabilities` and starts routing messages. On failure the
  // connection is closed.
  boost::asio::awaitable<QmpResult<void>> Handshake(std::chrono::milliseconds timeout);

  // Runs one command; returns its "return" value. `arguments` null means none.
  boost::asio::awaitable<QmpResult<nlohmann::json>> Execute(
      std::string command, nlohmann::json arguments = nullptr,
      std::chrono::milliseconds timeout = kDefaultCommandTimeout);

  // Same, sending `fd` along (SCM_RIGHTS) for `getfd` / `add-fd`. The fd is
  // duplicated at the call, so the caller may close its copy at any time.
  boost::asio::awaitable<QmpResult<nlohmann::json>> ExecuteWithFd(
      std::string command, nlohmann::json arguments, int fd,
      std::chrono::milliseconds timeout = kDefaultCommandTimeout);

  // Registers now for the next event called `name` (that `filter` accepts,
  // if given); await it later with EventWaiter::Wait.
  EventWaiter ExpectEvent(std::string name, EventFilter filter = nullptr);
  // ExpectEvent(...).Wait(timeout): only sees events that arrive after this call.
  boost::asio::awaitable<QmpResult<QmpEvent>> WaitForEvent(std::string name,
                                                           std::chrono::milliseconds timeout,
                                                           EventFilter filter = nullptr);

  // Handlers run on the reader, in arrival order, before any reply that
  // follows the event completes. They may call any method, including
  // destroying the client. Returns a token for Unsubscribe().
  int Subscribe(std::function<void(const QmpEvent&)> handler);
  void Unsubscribe(int token);

  // Runs once when the connection is lost other than by Close()/destruction:
  // QEMU exited or crashed, or broke the protocol. If it is already lost, the
  // handler is posted to run soon. Replaces any earlier handler.
  void OnDisconnect(std::function<void(const QmpError&)> handler);

  // True between a successful Handshake() and the loss of the connection.
  bool connected() const;
  // "7.2.0" (major.minor.micro) from the greeting; empty before Handshake().
  const std::string& qemu_version() const;

  // Closes the connection; outstanding commands and waits complete with
  // kDisconnected. The on-disconnect handler does not run. Idempotent.
  void Close();

 private:
  // Shared with the reader and writer coroutines, which outlive this object
  // when it is destroyed mid-operation.
  std::shared_ptr<internal::QmpSession> session_;
};

}  // namespace agentvm::qmp
