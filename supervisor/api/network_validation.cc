#include "supervisor/api/network_validation.h"

#include <set>
#include <vector>

#include "netsetup/domain_list.h"
#include "netsetup/egress_presets.h"
#include "netsetup/ipv4.h"
#include "netsetup/net_names.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

constexpr std::uint16_t kDnsPort = 53;

std::unexpected<Error> Invalid(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

std::string Str(std::string_view text) { return std::string(text); }

// Only digits, dots and one slash, and no longer than "255.255.255.255/32":
// anything else is refused here, so the parser's own message (which repeats
// its input) never carries hostile bytes.
bool LooksLikeCidr(std::string_view text) {
  if (text.empty() || text.size() > 18) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == '/')) return false;
  }
  return true;
}

}  // namespace

Result<void> ValidateInterfaceName(std::string_view name, std::string_view what) {
  // One rule for the API, the CLI and the supervisor: netsetup's.
  if (!net::IsValidLinkName(name)) {
    return Invalid("invalid " + Str(what) + " \"" + QuoteForError(name) +
                   "\": expected a Linux interface name of 1-15 characters of [A-Za-z0-9_.-], "
                   "other than \".\" and \"..\"");
  }
  return {};
}

Result<std::string> CanonicalCidr(std::string_view text, std::string_view what) {
  if (!LooksLikeCidr(text)) {
    return Invalid(Str(what) + ": \"" + QuoteForError(text) +
                   "\" is not an IPv4 subnet (want a.b.c.d/len, e.g. 203.0.113.0/24)");
  }
  auto subnet = net::Ipv4Subnet::Parse(text);
  if (!subnet) return Invalid(Str(what) + ": " + subnet.error().message);
  return subnet->ToString();
}

Result<void> ValidateNetworkRequest(const NetworkRequest& request,
                                    const NetworkFieldNames& names) {
  const std::string mode_name =
      request.mode ? std::string(NetworkModeName(*request.mode)) : std::string();

  if (request.allow_tcp_ports.size() > kMaxAllowedTcpPorts) {
    return Invalid(Str(names.allow_tcp_ports) + " lists " +
                   std::to_string(request.allow_tcp_ports.size()) + " ports; at most " +
                   std::to_string(kMaxAllowedTcpPorts) + " are allowed");
  }
  std::set<std::uint16_t> ports;
  for (std::uint16_t port : request.allow_tcp_ports) {
    if (port == 0) return Invalid(Str(names.allow_tcp_ports) + ": 0 is not a TCP port (1-65535)");
    if (port == kDnsPort) {
      return Invalid(Str(names.allow_tcp_ports) +
                     ": port 53 is refused: DNS goes only to the daemon's resolver");
    }
    if (!ports.insert(port).second) {
      return Invalid(Str(names.allow_tcp_ports) + ": port " + std::to_string(port) +
                     " is listed twice");
    }
  }

  if (request.allow_cidrs.size() > kMaxAllowedCidrs) {
    return Invalid(Str(names.allow_cidrs) + " lists " + std::to_string(request.allow_cidrs.size()) +
                   " subnets; at most " + std::to_string(kMaxAllowedCidrs) + " are allowed");
  }
  // The firewall keeps each VM's subnets in one interval set, which cannot
  // hold overlapping ranges; overlapping subnets also mean a typo.
  std::vector<net::Ipv4Subnet> subnets;
  for (const std::string& text : request.allow_cidrs) {
    auto canonical = CanonicalCidr(text, names.allow_cidrs);
    if (!canonical) return Fail(canonical.error());
    net::Ipv4Subnet subnet = net::Ipv4Subnet::Parse(*canonical).value();
    if (subnet.prefix_length == 0) {
      return Invalid(Str(names.allow_cidrs) +
                     ": 0.0.0.0/0 would open every address; list narrower subnets");
    }
    for (const net::Ipv4Subnet& earlier : subnets) {
      if (earlier == subnet) {
        return Invalid(Str(names.allow_cidrs) + ": " + *canonical + " is listed twice");
      }
      if (earlier.Contains(subnet.network) || subnet.Contains(earlier.network)) {
        return Invalid(Str(names.allow_cidrs) + ": " + earlier.ToString() + " and " + *canonical +
                       " overlap");
      }
    }
    subnets.push_back(subnet);
  }

  if (auto domains = net::CanonicalDomainPatterns(request.allow_domains, names.allow_domains); !domains) {
    return Fail(domains.error());
  }

  if (request.presets.size() > net::kMaxPresetsPerVm) {
    return Invalid(Str(names.presets) + " lists " + std::to_string(request.presets.size()) + " presets; at most " +
                   std::to_string(net::kMaxPresetsPerVm) + " are allowed");
  }
  std::set<std::string_view> presets;
  for (const std::string& preset : request.presets) {
    if (auto valid = net::ValidatePresetName(preset, names.presets); !valid) return Fail(valid.error());
    if (!presets.insert(preset).second) return Invalid(Str(names.presets) + ": \"" + preset + "\" is listed twice");
  }

  if (!request.bridge.empty()) {
    if (auto ok = ValidateInterfaceName(request.bridge, names.bridge); !ok) return ok;
  }
  if (request.mode == NetworkMode::kBridge && request.bridge.empty()) {
    return Invalid(Str(names.bridge) + " is required when " + Str(names.mode) +
                   " is bridge: name the bridge to attach the VM to");
  }
  if (request.mode != NetworkMode::kBridge && !request.bridge.empty()) {
    return Invalid(Str(names.bridge) + " is only allowed when " + Str(names.mode) + " is bridge");
  }

  if (request.mode && request.mode != NetworkMode::kNatFiltered) {
    const std::string why = " is refused when " + Str(names.mode) + " is " + mode_name +
                            ": only nat-filtered has a whitelist";
    if (!request.allow_tcp_ports.empty()) return Invalid(Str(names.allow_tcp_ports) + why);
    if (!request.allow_cidrs.empty()) return Invalid(Str(names.allow_cidrs) + why);
    if (!request.allow_domains.empty()) return Invalid(Str(names.allow_domains) + why);
    if (!request.presets.empty()) return Invalid(Str(names.presets) + why);
  }

  if (request.bandwidth_bytes_per_sec) {
    std::uint64_t rate = *request.bandwidth_bytes_per_sec;
    if (rate < kMinBandwidthBytesPerSec || rate > kMaxBandwidthBytesPerSec) {
      return Invalid(Str(names.bandwidth) + " must be between " +
                     std::to_string(kMinBandwidthBytesPerSec) + " and " +
                     std::to_string(kMaxBandwidthBytesPerSec) + " bytes per second, not " +
                     std::to_string(rate));
    }
    // The limit is enforced by the nat-filtered firewall; an isolated VM has
    // no NIC, and the operator's bridge is not ours to police.
    if (request.mode == NetworkMode::kIsolated) {
      return Invalid(Str(names.bandwidth) + " is refused when " + Str(names.mode) +
                     " is isolated: the VM has no network device");
    }
    if (request.mode == NetworkMode::kBridge) {
      return Invalid(Str(names.bandwidth) + " is refused when " + Str(names.mode) +
                     " is bridge: only nat-filtered limits bandwidth");
    }
  }
  return {};
}

}  // namespace agentvm::api
