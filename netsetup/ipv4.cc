#include "netsetup/ipv4.h"

#include <arpa/inet.h>

#include <charconv>

namespace agentvm::net {

Result<Ipv4Address> Ipv4Address::Parse(std::string_view text) {
  // inet_pton accepts exactly dotted-quad decimal (no octal, no short forms).
  std::string copy(text);
  in_addr addr{};
  if (copy.empty() || inet_pton(AF_INET, copy.c_str(), &addr) != 1) {
    return Fail(ErrorCode::kInvalidArgument, "not an IPv4 address: \"" + copy + "\"");
  }
  return Ipv4Address{ntohl(addr.s_addr)};
}

std::string Ipv4Address::ToString() const {
  in_addr addr{htonl(value)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, buf, sizeof buf);
  return buf;
}

Result<Ipv4Subnet> Ipv4Subnet::Parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "not a subnet (want a.b.c.d/len): \"" + std::string(text) + "\"");
  }
  auto address = Ipv4Address::Parse(text.substr(0, slash));
  if (!address) return Fail(address.error());
  std::string_view len_text = text.substr(slash + 1);
  int length = -1;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  if (ec != std::errc{} || end != len_text.data() + len_text.size() || len_text.empty() || length < 0 ||
      length > 32) {
    return Fail(ErrorCode::kInvalidArgument, "bad prefix length in \"" + std::string(text) + "\"");
  }
  Ipv4Subnet subnet{*address, length};
  if ((address->value & ~subnet.Mask()) != 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "\"" + std::string(text) + "\" has host bits set (did you mean " +
                    Ipv4Subnet{Ipv4Address{address->value & subnet.Mask()}, length}.ToString() + "?)");
  }
  return subnet;
}

std::string Ipv4Subnet::ToString() const { return network.ToString() + "/" + std::to_string(prefix_length); }

std::uint32_t Ipv4Subnet::Mask() const {
  return prefix_length == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix_length);
}

bool Ipv4Subnet::Contains(Ipv4Address address) const { return (address.value & Mask()) == network.value; }

std::uint64_t Ipv4Subnet::Size() const { return std::uint64_t{1} << (32 - prefix_length); }

std::optional<Ipv4Address> Ipv4Subnet::At(std::uint64_t n) const {
  if (n >= Size()) return std::nullopt;
  return Ipv4Address{network.value + static_cast<std::uint32_t>(n)};
}

Ipv4Address Ipv4Subnet::Broadcast() const { return Ipv4Address{network.value | ~Mask()}; }

Result<Ipv4Endpoint> Ipv4Endpoint::Parse(std::string_view text, std::uint16_t default_port) {
  auto colon = text.find(':');
  auto address = Ipv4Address::Parse(text.substr(0, colon));
  if (!address) return Fail(address.error());
  if (colon == std::string_view::npos) return Ipv4Endpoint{*address, default_port};
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return Fail(ErrorCode::kInvalidArgument, "bad port in \"" + std::string(text) + "\"");
  }
  return Ipv4Endpoint{*address, static_cast<std::uint16_t>(port)};
}

std::string Ipv4Endpoint::ToString() const { return address.ToString() + ":" + std::to_string(port); }

}  // namespace agentvm::net
