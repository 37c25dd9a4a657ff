// Connects the supervisor to a guest's control channel: QEMU's unix socket
// for the virtio-serial port, or AF_VSOCK cid:port. Both return a connected
// generic stream socket for GuestChannel, so nothing above this file cares
// which transport a VM uses.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include "common/error.h"

namespace agentvm {

using GuestSocket = boost::asio::generic::stream_protocol::socket;

// Asio has no vsock protocol type; a generic endpoint carries a sockaddr_vm.
boost::asio::generic::stream_protocol::endpoint VsockEndpoint(std::uint32_t cid,
                                                              std::uint32_t port);

struct VsockAddress {
  std::uint32_t cid = 0;
  std::uint32_t port = 0;
  bool operator==(const VsockAddress&) const = default;
};
// The cid and port of a vsock endpoint; nullopt for any other family.
std::optional<VsockAddress> ParseVsockEndpoint(
    const boost::asio::generic::stream_protocol::endpoint& endpoint);

// Connects to the unix socket at `path`, retrying while it does not exist
// yet or refuses (QEMU is still starting), until `timeout`: kTimeout then.
boost::asio::awaitable<Result<GuestSocket>> ConnectGuestUnix(std::string path,
                                                             std::chrono::milliseconds timeout);

// Connects to the guest's vsock listener, retrying while nobody listens yet
// (the guest is booting), until `timeout`. kUnavailable at once when the
// host has no AF_VSOCK.
boost::asio::awaitable<Result<GuestSocket>> ConnectGuestVsock(std::uint32_t cid, std::uint32_t port,
                                                              std::chrono::milliseconds timeout);

}  // namespace agentvm
