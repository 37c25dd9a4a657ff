// IPv4 addresses and subnets as plain values: parsing, printing and the
// arithmetic the bridge and the lease table need. No OS access.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm::net {

// An IPv4 address in host byte order.
struct Ipv4Address {
  std::uint32_t value = 0;

  static Result<Ipv4Address> Parse(std::string_view text);
  std::string ToString() const;
  auto operator<=>(const Ipv4Address&) const = default;
};

// A subnet "a.b.c.d/len"; `network` has no host bits set.
struct Ipv4Subnet {
  Ipv4Address network;
  int prefix_length = 0;

  // Refuses host bits ("10.0.0.1/8") and lengths outside 0..32.
  static Result<Ipv4Subnet> Parse(std::string_view text);
  std::string ToString() const;
  std::uint32_t Mask() const;
  bool Contains(Ipv4Address address) const;
  // The n-th address (0 = the network address itself); nullopt outside.
  std::optional<Ipv4Address> At(std::uint64_t n) const;
  // Number of addresses, network and broadcast included.
  std::uint64_t Size() const;
  Ipv4Address Broadcast() const;
  auto operator<=>(const Ipv4Subnet&) const = default;
};

// An address and a port, "a.b.c.d" or "a.b.c.d:port".
struct Ipv4Endpoint {
  Ipv4Address address;
  std::uint16_t port = 0;

  static Result<Ipv4Endpoint> Parse(std::string_view text, std::uint16_t default_port);
  std::string ToString() const;
  auto operator<=>(const Ipv4Endpoint&) const = default;
};

}  // namespace agentvm::net
