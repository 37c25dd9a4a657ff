#include "qmp/qmp_session.h"

#include <algorithm>
#include <exception>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "common/logging.h"
#include "common/spawn.h"

namespace agentvm::qmp::internal {
namespace {

using nlohmann::json;
using Kind = QmpError::Kind;

// Log lines quote what QEMU sent; a query result can be megabytes.
std::string Excerpt(std::string_view text) {
  constexpr std::size_t kMax = 300;
  if (text.size() <= kMax) return std::string(text);
  return fmt::format("{}... ({} bytes)", text.substr(0, kMax), text.size());
}

std::string IntField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return "?";
  return std::to_string(it->get<std::int64_t>());
}

}  // namespace

QmpSession::QmpSession(Socket socket, std::string log_tag)
    : socket_(std::move(socket)), tag_(std::move(log_tag)), log_(Logger("qmp")) {}

void QmpSession::Spawn(boost::asio::awaitable<void> coroutine, const char* what) {
  SpawnDetached(socket_.get_executor(), std::move(coroutine), tag_ + ": qmp " + what, log_);
}

boost::asio::awaitable<QmpResult<void>> QmpSession::Handshake(std::shared_ptr<QmpSession> self,
                                                              std::chrono::milliseconds timeout) {
  if (self->state_ == State::kClosed) {
    co_return QmpFail(Kind::kDisconnected, "", "QMP connection closed");
  }
  if (self->state_ != State::kNew) co_return QmpFail(Kind::kProtocol, "", "handshake already done");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  self->state_ = State::kHandshaking;
  self->greeting_ = std::make_shared<ReplySlot>(self->socket_.get_executor());
  self->Spawn(ReadLoop(self), "reader");

  auto greeting_slot = self->greeting_;
  auto greeting = co_await greeting_slot->Wait(timeout);
  if (!greeting) {
    QmpError error{Kind::kTimeout, "", "", fmt::format("no QMP greeting within {} ms", timeout.count())};
    self->Shutdown(error, /*notify=*/false);
    co_return std::unexpected(error);
  }
  if (!*greeting) co_return std::unexpected(greeting->error());

  auto remaining = std::max(std::chrono::milliseconds(0),
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                deadline - std::chrono::steady_clock::now()));
  auto caps = co_await Execute(self, "qmp_capabilities", nullptr, UniqueFd(), false, remaining);
  if (!caps) {
    self->Shutdown(caps.error(), /*notify=*/false);
    co_return std::unexpected(caps.error());
  }
  if (self->state_ != State::kHandshaking) {  // closed while we waited
    co_return QmpFail(Kind::kDisconnected, "", "QMP connection closed during handshake");
  }
  self->state_ = State::kReady;
  self->log_->debug("{}: QMP ready (QEMU {})", self->tag_, self->qemu_version_);
  co_return QmpResult<void>();
}

boost::asio::awaitable<QmpResult<json>> QmpSession::Execute(std::shared_ptr<QmpSession> self,
                                                            std::string command, json arguments,
                                                            UniqueFd fd, bool with_fd,
                                                            std::chrono::milliseconds timeout) {
  if (self->state_ == State::kClosed) {
    co_return QmpFail(Kind::kDisconnected, command,
                      self->lost_ ? self->lost_->message : "QMP connection closed");
  }
  const bool negotiating =
      self->state_ == State::kHandshaking && command == "qmp_capabilities";
  if (self->state_ != State::kReady && !negotiating) {
    co_return QmpFail(Kind::kProtocol, command, "QMP handshake not done");
  }
  if (with_fd && !fd.valid()) {
    co_return QmpFail(Kind::kCommandFailed, command, "no valid file descriptor to pass");
  }

  const std::uint64_t id = self->next_id_++;
  json message = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) message["arguments"] = std::move(arguments);
  // `replace`: a stray non-UTF-8 byte in an argument must not throw here.
  std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
  self->log_->debug("{}: qmp -> {}{}", self->tag_, Excerpt(line), fd.valid() ? " +fd" : "");
  line += '\n';

  auto reply = std::make_shared<ReplySlot>(self->socket_.get_executor());
  self->in_flight_.emplace(id, InFlight{command, reply});
  self->Enqueue(std::move(line), std::move(fd));

  auto result = co_await reply->Wait(timeout);
  if (!result) {
    // A reply that still comes finds no entry and is dropped.
    self->in_flight_.erase(id);
    self->log_->warn("{}: qmp {} got no reply within {} ms", self->tag_, command, timeout.count());
    co_return QmpFail(Kind::kTimeout, command,
                      fmt::format("no reply within {} ms", timeout.count()));
  }
  co_return std::move(*result);
}

void QmpSession::Enqueue(std::string bytes, UniqueFd fd) {
  outgoing_.push_back(Outgoing{std::move(bytes), std::move(fd)});
  if (writing_) return;
  writing_ = true;
  Spawn(WriteLoop(shared_from_this()), "writer");
}

// The only writer, so writes never interleave; commands queue behind it.
boost::asio::awaitable<void> QmpSession::WriteLoop(std::shared_ptr<QmpSession> self) {
  while (self->state_ != State::kClosed && !self->outgoing_.empty()) {
    Outgoing item = std::move(self->outgoing_.front());
    self->outgoing_.pop_front();
    boost::system::error_code ec;
    std::size_t sent = 0;
    if (item.fd.valid()) sent = co_await SendWithFd(self->socket_, item.bytes, item.fd.get(), ec);
    if (!ec && sent < item.bytes.size()) {
      co_await boost::asio::async_write(
          self->socket_, boost::asio::buffer(item.bytes.data() + sent, item.bytes.size() - sent),
          boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    if (ec && self->state_ != State::kClosed) {
      self->Shutdown({Kind::kDisconnected, "", "", "write to QMP socket: " + ec.message()},
                     /*notify=*/true);
    }
  }
  self->writing_ = false;
}

boost::asio::awaitable<void> QmpSession::ReadLoop(std::shared_ptr<QmpSession> self) {
  while (self->state_ != State::kClosed) {
    boost::system::error_code ec;
    std::size_t n = co_await boost::asio::async_read_until(
        self->socket_, boost::asio::dynamic_buffer(self->read_buffer_, QmpClient::kMaxLineBytes),
        '\n', boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (self->state_ == State::kClosed) co_return;
    if (ec == boost::asio::error::not_found) {
      self->Shutdown({Kind::kProtocol, "", "",
                      fmt::format("line from QEMU longer than {} bytes", QmpClient::kMaxLineBytes)},
                     /*notify=*/true);
      co_return;
    }
    if (ec) {
      std::string why = ec == boost::asio::error::eof ? "QEMU closed the QMP connection"
                                                      : "read from QMP socket: " + ec.message();
      self->Shutdown({Kind::kDisconnected, "", "", std::move(why)}, /*notify=*/true);
      co_return;
    }
    std::string line = self->read_buffer_.substr(0, n - 1);
    self->read_buffer_.erase(0, n);
    try {
      self->HandleLine(line);
    } catch (const std::exception& e) {
      self->Shutdown({Kind::kProtocol, "", "", fmt::format("bad message from QEMU ({}): {}",
                                                           e.what(), Excerpt(line))},
                     /*notify=*/true);
    }
  }
}

void QmpSession::HandleLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return;
  json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object()) {
    Shutdown({Kind::kProtocol, "", "", "malformed message from QEMU: " + Excerpt(line)},
             /*notify=*/true);
    return;
  }
  log_->trace("{}: qmp <- {}", tag_, Excerpt(line));
  if (greeting_ && !greeting_->done()) {
    HandleGreeting(message);
  } else if (message.contains("event")) {
    HandleEvent(message);
  } else if (message.contains("return") || message.contains("error")) {
    HandleReply(message);
  } else {
    log_->warn("{}: qmp ignoring unexpected message: {}", tag_, Excerpt(line));
  }
}

void QmpSession::HandleGreeting(const json& message) {
  auto qmp = message.find("QMP");
  if (qmp == message.end() || !qmp->is_object()) {
    Shutdown({Kind::kProtocol, "", "", "expected the QMP greeting, got: " + Excerpt(message.dump())},
             /*notify=*/true);
    return;
  }
  std::string package;
  auto version = qmp->find("version");
  if (version != qmp->end() && version->is_object()) {
    auto qemu = version->find("qemu");
    if (qemu != version->end() && qemu->is_object()) {
      qemu_version_ = IntField(*qemu, "major") + "." + IntField(*qemu, "minor") + "." +
                      IntField(*qemu, "micro");
    }
    auto pkg = version->find("package");
    if (pkg != version->end() && pkg->is_string()) package = pkg->get<std::string>();
  }
  log_->debug("{}: QMP greeting from QEMU {} ({})", tag_, qemu_version_, package);
  greeting_->Set(QmpResult<json>(std::in_place, *qmp));
}

void QmpSession::HandleReply(const json& message) {
  auto id = message.find("id");
  if (id == message.end() || !id->is_number_unsigned()) {
    log_->warn("{}: qmp ignoring reply without one of our ids: {}", tag_, Excerpt(message.dump()));
    return;
  }
  auto it = in_flight_.find(id->get<std::uint64_t>());
  if (it == in_flight_.end()) {
    log_->debug("{}: qmp dropping reply to abandoned command id {}", tag_, id->dump());
    return;
  }
  InFlight entry = std::move(it->second);
  in_flight_.erase(it);

  if (auto ret = message.find("return"); ret != message.end()) {
    entry.reply->Set(QmpResult<json>(std::in_place, *ret));
    return;
  }
  QmpError error{Kind::kCommandFailed, entry.command, "GenericError", "no description"};
  const json& body = message["error"];
  if (body.is_object()) {
    if (auto c = body.find("class"); c != body.end() && c->is_string()) error.qmp_class = *c;
    if (auto d = body.find("desc"); d != body.end() && d->is_string()) error.message = *d;
  }
  log_->debug("{}: qmp {} failed: {}: {}", tag_, entry.command, error.qmp_class, error.message);
  entry.reply->Set(std::unexpected(std::move(error)));
}

void QmpSession::HandleEvent(const json& message) {
  const json& name = message["event"];
  if (!name.is_string()) {
    log_->warn("{}: qmp ignoring event without a name: {}", tag_, Excerpt(message.dump()));
    return;
  }
  QmpEvent event{name.get<std::string>(), message.value("data", json::object()),
                 message.value("timestamp", json())};
  log_->debug("{}: qmp event {} {}", tag_, event.name, Excerpt(event.data.dump()));

  // Waiters first: Set() only schedules them, while a subscriber below may
  // close the session and would otherwise fail them with kDisconnected.
  std::erase_if(event_waiters_, [&](const EventWait& waiter) {
    auto slot = waiter.slot.lock();
    if (!slot) return true;
    if (waiter.name != event.name || !Accepts(waiter, event)) return false;
    slot->Set(event);
    return true;
  });

  // Handlers may subscribe, unsubscribe or close: iterate over a snapshot and
  // skip those removed meanwhile.
  std::vector<std::pair<int, std::shared_ptr<EventHandler>>> snapshot(subscribers_.begin(),
                                                                      subscribers_.end());
  for (auto& [token, handler] : snapshot) {
    if (state_ == State::kClosed) break;
    if (!subscribers_.contains(token)) continue;
    try {
      (*handler)(event);
    } catch (const std::exception& e) {
      log_->error("{}: qmp event handler for {} threw: {}", tag_, event.name, e.what());
    } catch (...) {
      log_->error("{}: qmp event handler for {} threw", tag_, event.name);
    }
  }
}

bool QmpSession::Accepts(const EventWait& waiter, const QmpEvent& event) {
  if (!waiter.filter) return true;
  try {
    return waiter.filter(event);
  } catch (const std::exception& e) {
    log_->error("{}: qmp event filter for {} threw: {}", tag_, event.name, e.what());
    return false;
  }
}

std::shared_ptr<QmpSession::EventSlot> QmpSession::AddEventWaiter(const std::string& name,
                                                                  EventFilter filter) {
  auto slot = std::make_shared<EventSlot>(socket_.get_executor());
  if (state_ == State::kClosed) {
    slot->Set(QmpFail(Kind::kDisconnected, "", lost_ ? lost_->message : "QMP connection closed"));
    return slot;
  }
  std::erase_if(event_waiters_, [](const EventWait& waiter) { return waiter.slot.expired(); });
  event_waiters_.push_back(EventWait{name, std::move(filter), slot});
  return slot;
}

int QmpSession::Subscribe(EventHandler handler) {
  int token = next_token_++;
  if (state_ != State::kClosed) {
    subscribers_.emplace(token, std::make_shared<EventHandler>(std::move(handler)));
  }
  return token;
}

void QmpSession::Unsubscribe(int token) { subscribers_.erase(token); }

void QmpSession::SetOnDisconnect(DisconnectHandler handler) {
  if (state_ != State::kClosed) {
    on_disconnect_ = std::move(handler);
    return;
  }
  if (lost_ && !disconnect_reported_ && handler) {
    disconnect_reported_ = true;
    boost::asio::post(socket_.get_executor(),
                      [handler = std::move(handler), why = *lost_] { handler(why); });
  }
}

void QmpSession::Close() {
  Shutdown({Kind::kDisconnected, "", "", "QMP connection closed"}, /*notify=*/false);
}

void QmpSession::Shutdown(const QmpError& why, bool notify) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (notify) {
    lost_ = why;
    // QEMU exiting closes QMP, which is expected on every stop; whoever owns
    // the process decides whether that is news. A protocol break always is.
    if (why.kind == QmpError::Kind::kProtocol) {
      log_->warn("{}: QMP connection lost ({}): {}", tag_, QmpErrorKindName(why.kind), why.message);
    } else {
      log_->debug("{}: QMP connection lost ({}): {}", tag_, QmpErrorKindName(why.kind), why.message);
    }
  } else {
    log_->debug("{}: QMP connection closed: {}", tag_, why.message);
  }

  auto in_flight = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [id, entry] : in_flight) {
    QmpError error = why;
    error.command = entry.command;
    entry.reply->Set(std::unexpected(std::move(error)));
  }
  if (greeting_) greeting_->Set(std::unexpected(why));
  auto waiters = std::move(event_waiters_);
  event_waiters_.clear();
  for (auto& waiter : waiters) {
    if (auto slot = waiter.slot.lock()) slot->Set(std::unexpected(why));
  }
  outgoing_.clear();  // closes fds that were never sent
  subscribers_.clear();

  // Moved out first: the handler may destroy the client, or re-register.
  auto handler = std::move(on_disconnect_);
  on_disconnect_ = nullptr;
  if (notify && handler) {
    disconnect_reported_ = true;
    try {
      handler(why);
    } catch (const std::exception& e) {
      log_->error("{}: qmp disconnect handler threw: {}", tag_, e.what());
    } catch (...) {
      log_->error("{}: qmp disconnect handler threw", tag_);
    }
  }
}

}  // namespace agentvm::qmp::internal
