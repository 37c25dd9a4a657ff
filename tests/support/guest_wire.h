// GuestWire: a connected socketpair whose one end is a GuestChannel's socket
// and whose other end is a raw fd the test plays the guest on. Header-only,
// for unit tests.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include <boost/asio/io_context.hpp>

#include "supervisor/guest_channel.h"

namespace agentvm::testing {

struct GuestWire {
  GuestChannel::Socket host;
  int peer;  // the test's to close
};

inline GuestWire MakeGuestWire(boost::asio::io_context& io) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
  return GuestWire{
      GuestChannel::Socket(io, boost::asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), sv[0]), sv[1]};
}

}  // namespace agentvm::testing
