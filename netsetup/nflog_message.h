// ParseNflogMessage: one NFLOG packet message (nfnetlink_log, what nftables'
// `log group N` sends to a netlink socket) reduced to what the egress log
// keeps of a refused connection: the rule's prefix, source, destination,
// protocol and destination port. Pure: the daemon's socket hands it the bytes
// of each message it reads (bounded by the socket's buffer), tests hand it
// captured ones. Every length in the message is checked before it is used:
// the payload is the guest's packet.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"
#include "netsetup/ipv4.h"

namespace agentvm::net {

inline constexpr std::size_t kMaxNflogPrefixBytes = 64;

struct NflogPacket {
  std::string prefix;  // the log rule's prefix, at most kMaxNflogPrefixBytes
  Ipv4Address source;
  Ipv4Address destination;
  std::uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ...
  std::uint16_t port = 0;     // TCP/UDP destination port; 0 for others or a non-first fragment
};

// kInvalidArgument for anything but a well-formed NFULNL_MSG_PACKET message
// whose payload starts with an IPv4 header.
Result<NflogPacket> ParseNflogMessage(std::span<const std::uint8_t> message);

// "tcp", "udp", "icmp" or the protocol number.
std::string ProtocolName(std::uint8_t protocol);

}  // namespace agentvm::net
