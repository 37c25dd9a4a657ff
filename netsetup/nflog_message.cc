#include "netsetup/nflog_message.h"

#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstring>

namespace agentvm::net {
namespace {

std::unexpected<Error> Bad(const std::string& why) {
  return Fail(ErrorCode::kInvalidArgument, "NFLOG message: " + why);
}

std::uint16_t Be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t Be32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}

// The IPv4 header (and the ports after it, when there) of the payload.
Result<void> ParsePayload(std::span<const std::uint8_t> ip, NflogPacket& packet) {
  if (ip.size() < 20) return Bad("payload shorter than an IPv4 header");
  if (ip[0] >> 4 != 4) return Bad("payload is not IPv4");
  const std::size_t header = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
  if (header < 20 || header > ip.size()) return Bad("bad IPv4 header length");
  packet.protocol = ip[9];
  packet.source.value = Be32(&ip[12]);
  packet.destination.value = Be32(&ip[16]);
  const bool first_fragment = (Be16(&ip[6]) & 0x1fff) == 0;
  const bool has_ports = packet.protocol == IPPROTO_TCP || packet.protocol == IPPROTO_UDP;
  if (has_ports && first_fragment && ip.size() >= header + 4) packet.port = Be16(&ip[header + 2]);
  return {};
}

}  // namespace

Result<NflogPacket> ParseNflogMessage(std::span<const std::uint8_t> message) {
  nlmsghdr header;
  if (message.size() < sizeof header) return Bad("shorter than a netlink header");
  std::memcpy(&header, message.data(), sizeof header);
  if (header.nlmsg_len < sizeof header || header.nlmsg_len > message.size()) return Bad("bad length");
  if (header.nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) return Bad("not a packet message");
  std::size_t offset = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  if (offset > header.nlmsg_len) return Bad("no nfgenmsg");
  NflogPacket packet;
  bool have_payload = false;
  while (offset + sizeof(nlattr) <= header.nlmsg_len) {
    nlattr attribute;
    std::memcpy(&attribute, message.data() + offset, sizeof attribute);
    if (attribute.nla_len < sizeof attribute || offset + attribute.nla_len > header.nlmsg_len) {
      return Bad("attribute overruns the message");
    }
    auto value = message.subspan(offset + NLA_HDRLEN, attribute.nla_len - NLA_HDRLEN);
    switch (attribute.nla_type & NLA_TYPE_MASK) {
      case NFULA_PREFIX: {
        // NUL-terminated as the kernel sends it; printable bytes only.
        for (std::uint8_t c : value.first(std::min(value.size(), kMaxNflogPrefixBytes))) {
          if (c == 0) break;
          packet.prefix += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
        }
        break;
      }
      case NFULA_PAYLOAD:
        if (auto parsed = ParsePayload(value, packet); !parsed) return Fail(parsed.error());
        have_payload = true;
        break;
      default:
        break;
    }
    offset += NLA_ALIGN(attribute.nla_len);
  }
  if (!have_payload) return Bad("no payload");
  return packet;
}

std::string ProtocolName(std::uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
  }
  return std::to_string(protocol);
}

}  // namespace agentvm::net
