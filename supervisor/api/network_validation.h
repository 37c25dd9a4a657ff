// Checks of a VM's network request (supervisor/vm_types.h NetworkRequest)
// shared by the API, which parses it from JSON, and the agentvm CLI, which
// builds it from flags, so both refuse the same things with the same words.
// Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "netsetup/firewall_config.h"
#include "supervisor/vm_types.h"

namespace agentvm::api {

// The limits are netsetup/firewall_config.h's (kMaxExtraTcpPorts,
// kMaxExtraCidrs, kMinBytesPerSecond), so what passes here the firewall
// accepts too.
inline constexpr std::size_t kMaxAllowedTcpPorts = net::kMaxExtraTcpPorts;
inline constexpr std::size_t kMaxAllowedCidrs = net::kMaxExtraCidrs;
inline constexpr std::uint64_t kMinBandwidthBytesPerSec = net::kMinBytesPerSecond;
inline constexpr std::uint64_t kMaxBandwidthBytesPerSec = 100'000'000'000;

// How the network checks name each field in their messages: the API names
// the JSON fields, the CLI its flags, so one set of checks serves both.
struct NetworkFieldNames {
  std::string_view mode = "network.mode";
  std::string_view allow_tcp_ports = "network.allow_tcp_ports";
  std::string_view allow_cidrs = "network.allow_cidrs";
  std::string_view allow_domains = "network.allow_domains";
  std::string_view presets = "network.presets";
  std::string_view bridge = "network.bridge";
  std::string_view bandwidth = "network.bandwidth_bytes_per_sec";
};
inline constexpr NetworkFieldNames kJsonNetworkFields{};

// A Linux interface name: 1-15 bytes, none of '/', ':', whitespace or
// control characters, not "." or "..".
Result<void> ValidateInterfaceName(std::string_view name, std::string_view what);
// "a.b.c.d/len" without host bits, returned in canonical form.
Result<std::string> CanonicalCidr(std::string_view text, std::string_view what);
// Everything about a NetworkRequest that does not depend on the daemon's
// configuration:
//  - at most kMaxAllowedTcpPorts ports, each 1-65535 but not 53 (DNS goes
//    only to the daemon's resolver), no duplicates;
//  - at most kMaxAllowedCidrs CIDRs, each valid, not /0, none overlapping
//    another;
//  - at most 256 allow_domains, each a name or *.name (domain_list.h), none
//    twice;
//  - at most 16 presets, each a valid preset name, none twice (whether the
//    daemon knows them, and the 256-name cap after they expand, only the
//    supervisor can check: operators define presets);
//  - bridge a valid interface name, given exactly when the mode is bridge;
//  - allow_* and presets only with nat-filtered (or no mode);
//  - bandwidth kMinBandwidthBytesPerSec..kMaxBandwidthBytesPerSec, only with
//    nat-filtered (or no mode).
// With no mode the daemon's default decides, so the mode-dependent rules hold
// for sure only once that default is applied (the supervisor's part), and
// whether a CIDR overlaps the VMs' own subnet only the supervisor knows.
Result<void> ValidateNetworkRequest(const NetworkRequest& request,
                                    const NetworkFieldNames& names = kJsonNetworkFields);

}  // namespace agentvm::api
