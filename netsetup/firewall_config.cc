#include "netsetup/firewall_config.h"

#include <algorithm>
#include <set>

#include "netsetup/net_names.h"

namespace agentvm::net {
namespace {

constexpr std::uint16_t kDnsPort = 53;

std::unexpected<Error> Invalid(std::string message) { return Fail(ErrorCode::kInvalidArgument, std::move(message)); }

Result<void> CheckPorts(const std::vector<std::uint16_t>& ports, const std::string& what) {
  std::set<std::uint16_t> seen;
  for (std::uint16_t port : ports) {
    if (port == 0) return Invalid(what + ": port 0 is not a port (want 1..65535)");
    if (port == kDnsPort) {
      return Invalid(what + ": port 53 cannot be opened: DNS goes only to the daemon's resolver on the gateway");
    }
    if (!seen.insert(port).second) return Invalid(what + ": port " + std::to_string(port) + " is listed twice");
  }
  return {};
}

bool Overlap(const Ipv4Subnet& a, const Ipv4Subnet& b) { return a.Contains(b.network) || b.Contains(a.network); }

}  // namespace

Result<void> ValidateFirewallConfig(const FirewallConfig& config) {
  if (!IsValidLinkName(config.bridge)) return Invalid("invalid bridge name \"" + config.bridge + "\"");
  if (config.subnet.prefix_length < 1 || config.subnet.prefix_length > 30) {
    return Invalid("subnet " + config.subnet.ToString() + ": prefix length must be 1..30");
  }
  if (!config.subnet.Contains(config.gateway) || config.gateway == config.subnet.network ||
      config.gateway == config.subnet.Broadcast()) {
    return Invalid("gateway " + config.gateway.ToString() + " is not a host address of " + config.subnet.ToString());
  }
  if (config.max_connections_per_vm < 1 || config.max_connections_per_vm > kMaxConnectionsPerVmCeiling) {
    return Invalid("max_connections_per_vm " + std::to_string(config.max_connections_per_vm) + " is not in 1.." +
                   std::to_string(kMaxConnectionsPerVmCeiling));
  }
  return CheckPorts(config.allowed_tcp_ports, "allowed TCP ports");
}

Result<void> ValidateVmNetRules(const FirewallConfig& config, const VmNetRules& rules) {
  if (!IsValidLinkName(rules.tap)) return Invalid("invalid tap name \"" + rules.tap + "\"");
  const std::string address = rules.address.ToString();
  if (!config.subnet.Contains(rules.address) || rules.address == config.subnet.network ||
      rules.address == config.subnet.Broadcast() || rules.address == config.gateway) {
    return Invalid("address " + address + " is not a VM address of " + config.subnet.ToString());
  }
  if (rules.extra_tcp_ports.size() > kMaxExtraTcpPorts) {
    return Invalid("at most " + std::to_string(kMaxExtraTcpPorts) + " extra TCP ports, not " +
                   std::to_string(rules.extra_tcp_ports.size()));
  }
  if (auto ports = CheckPorts(rules.extra_tcp_ports, "extra TCP ports"); !ports) return ports;
  if (rules.extra_cidrs.size() > kMaxExtraCidrs) {
    return Invalid("at most " + std::to_string(kMaxExtraCidrs) + " extra CIDRs, not " +
                   std::to_string(rules.extra_cidrs.size()));
  }
  for (std::size_t i = 0; i < rules.extra_cidrs.size(); ++i) {
    const Ipv4Subnet& cidr = rules.extra_cidrs[i];
    if (cidr.prefix_length < 1 || cidr.prefix_length > 32 || (cidr.network.value & ~cidr.Mask()) != 0) {
      return Invalid("extra CIDR " + cidr.ToString() + " is malformed");
    }
    if (Overlap(cidr, config.subnet)) {
      return Invalid("extra CIDR " + cidr.ToString() + " overlaps the VMs' own subnet " + config.subnet.ToString() +
                     " (VM-to-VM and VM-to-host traffic cannot be opened)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (Overlap(cidr, rules.extra_cidrs[j])) {
        return Invalid("extra CIDRs " + rules.extra_cidrs[j].ToString() + " and " + cidr.ToString() + " overlap");
      }
    }
  }
  if (rules.bytes_per_second && *rules.bytes_per_second < kMinBytesPerSecond) {
    return Invalid("bandwidth limit " + std::to_string(*rules.bytes_per_second) + " bytes/s is below the minimum of " +
                   std::to_string(kMinBytesPerSecond));
  }
  unsigned char mac[6];
  if (!rules.mac.empty()) {
    if (!ParseMac(rules.mac, mac)) return Invalid("MAC \"" + rules.mac + "\" is not aa:bb:cc:dd:ee:ff");
    if ((mac[0] & 1) != 0) return Invalid("MAC " + rules.mac + " is a multicast address");
  }
  return {};
}

std::string EffectiveMac(const VmNetRules& rules) {
  return rules.mac.empty() ? MacForAddress(rules.address) : rules.mac;
}

}  // namespace agentvm::net
