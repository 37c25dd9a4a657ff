// Internal to qmp/: the state of one QMP connection. QmpClient is a thin
// facade over it; the reader and writer coroutines and every in-flight
// Execute hold it by shared_ptr, so destroying the facade (which closes the
// session) never leaves a coroutine pointing at freed memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "common/pending.h"
#include "qmp/fd_passing.h"
#include "qmp/qmp_client.h"
#include "qmp/qmp_error.h"

namespace agentvm::qmp::internal {

class QmpSession : public std::enable_shared_from_this<QmpSession> {
 public:
  using Socket = QmpClient::Socket;
  using ReplySlot = Pending<QmpResult<nlohmann::json>>;
  using EventSlot = Pending<QmpResult<QmpEvent>>;
  using EventHandler = std::function<void(const QmpEvent&)>;
  using DisconnectHandler = std::function<void(const QmpError&)>;

  QmpSession(Socket socket, std::string log_tag);

  // Static so the coroutine frames own a reference to the session.
  static boost::asio::awaitable<QmpResult<void>> Handshake(std::shared_ptr<QmpSession> self,
                                                           std::chrono::milliseconds timeout);
  // `fd` is sent along when `with_fd`; an invalid one then fails the call.
  static boost::asio::awaitable<QmpResult<nlohmann::json>> Execute(
      std::shared_ptr<QmpSession> self, std::string command, nlohmann::json arguments,
      UniqueFd fd, bool with_fd, std::chrono::milliseconds timeout);

  std::shared_ptr<EventSlot> AddEventWaiter(const std::string& name, EventFilter filter);
  int Subscribe(EventHandler handler);
  void Unsubscribe(int token);
  void SetOnDisconnect(DisconnectHandler handler);

  // Tears the connection down without running the on-disconnect handler.
  void Close();

  bool ready() const { return state_ == State::kReady; }
  const std::string& qemu_version() const { return qemu_version_; }

 private:
  enum class State { kNew, kHandshaking, kReady, kClosed };

  struct Outgoing {
    std::string bytes;
    UniqueFd fd;  // sent with the first bytes when valid
  };
  struct InFlight {
    std::string command;
    std::shared_ptr<ReplySlot> reply;
  };
  struct EventWait {
    std::string name;
    EventFilter filter;  // may be empty
    // weak: an abandoned EventWaiter costs nothing but a stale entry.
    std::weak_ptr<EventSlot> slot;
  };

  static boost::asio::awaitable<void> ReadLoop(std::shared_ptr<QmpSession> self);
  static boost::asio::awaitable<void> WriteLoop(std::shared_ptr<QmpSession> self);
  void Spawn(boost::asio::awaitable<void> coroutine, const char* what);

  void Enqueue(std::string bytes, UniqueFd fd);
  void HandleLine(std::string_view line);
  void HandleGreeting(const nlohmann::json& message);
  void HandleReply(const nlohmann::json& message);
  void HandleEvent(const nlohmann::json& message);
  bool Accepts(const EventWait& waiter, const QmpEvent& event);

  // Fails everything outstanding with `why` (commands get their own name
  // filled in) and closes the socket; runs the on-disconnect handler when
  // `notify`. Idempotent: only the first call does anything.
  void Shutdown(const QmpError& why, bool notify);

  Socket socket_;
  std::string tag_;
  std::shared_ptr<spdlog::logger> log_;
  State state_ = State::kNew;

  std::string read_buffer_;
  std::shared_ptr<ReplySlot> greeting_;  // set by the reader's first line
  std::string qemu_version_;

  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, InFlight> in_flight_;

  std::deque<Outgoing> outgoing_;
  bool writing_ = false;

  int next_token_ = 1;
  // shared_ptr so a handler stays alive while it runs even if it unsubscribes.
  std::map<int, std::shared_ptr<EventHandler>> subscribers_;
  std::vector<EventWait> event_waiters_;

  DisconnectHandler on_disconnect_;
  std::optional<QmpError> lost_;  // why the connection was lost, if not by Close()
  bool disconnect_reported_ = false;
};

}  // namespace agentvm::qmp::internal
