// QgaClient: QEMU's guest agent (qemu-ga) over the host end of its
// virtio-serial port: one JSON command, one JSON reply per line, in order.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "supervisor/guest_connector.h"

namespace agentvm::bench {

class QgaClient {
 public:
  // Connects to QEMU's socket for the port and waits (guest-sync) until
  // qemu-ga in the guest answers; it may still be starting.
  static boost::asio::awaitable<Result<std::unique_ptr<QgaClient>>> Connect(std::string socket_path,
                                                                            std::chrono::milliseconds timeout);

  // Runs `command` and returns its "return" value; a QGA "error" reply is
  // kInternal with its description.
  boost::asio::awaitable<Result<nlohmann::json>> Execute(const std::string& command, nlohmann::json arguments,
                                                         std::chrono::milliseconds timeout);

 private:
  explicit QgaClient(GuestSocket socket) : socket_(std::move(socket)) {}
  boost::asio::awaitable<Result<nlohmann::json>> ReadReply(std::chrono::milliseconds timeout);

  GuestSocket socket_;
  std::string buffer_;  // bytes read past the last reply
};

}  // namespace agentvm::bench
