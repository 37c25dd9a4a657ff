// A change to a running VM's egress policy (PATCH /v1/vms/{id}/network,
// `agentvm net`): each field given replaces the VM's current value, the
// others stay as they are. Plain data and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "netsetup/egress_presets.h"
#include "supervisor/vm_types.h"

namespace agentvm {

struct NetworkUpdate {
  std::optional<std::vector<std::uint16_t>> allow_tcp_ports;
  std::optional<std::vector<std::string>> allow_cidrs;
  std::optional<std::vector<std::string>> allow_domains;
  std::optional<std::vector<std::string>> presets;
  // What `presets` expand to: filled in by the daemon (never by a client)
  // whenever `presets` is given.
  std::optional<std::vector<std::string>> preset_domains;
  // Outer: whether the field was given; inner nullopt: no limit any more.
  std::optional<std::optional<std::uint64_t>> bandwidth_bytes_per_sec;

  bool empty() const {
    return !allow_tcp_ports && !allow_cidrs && !allow_domains && !presets && !bandwidth_bytes_per_sec;
  }
};

// `info` with the fields `update` gives replaced.
inline NetworkInfo ApplyNetworkUpdate(NetworkInfo info, const NetworkUpdate& update) {
  if (update.allow_tcp_ports) info.allow_tcp_ports = *update.allow_tcp_ports;
  if (update.allow_cidrs) info.allow_cidrs = *update.allow_cidrs;
  if (update.allow_domains) info.allow_domains = *update.allow_domains;
  if (update.presets) info.presets = *update.presets;
  if (update.preset_domains) info.preset_domains = *update.preset_domains;
  if (update.bandwidth_bytes_per_sec) info.bandwidth_bytes_per_sec = *update.bandwidth_bytes_per_sec;
  return info;
}

// The names a VM may resolve: its own, then its presets' (docs/network.md).
inline std::vector<std::string> EnforcedDomains(const NetworkInfo& info) {
  return net::MergeDomainLists(info.allow_domains, info.preset_domains);
}
inline std::vector<std::string> EnforcedDomains(const NetworkRequest& request) {
  return net::MergeDomainLists(request.allow_domains, request.preset_domains);
}

// Fills in preset_domains from the presets named (EgressPresets::Expand):
// at create, and in a PATCH that gives presets (`now`: the VM's policy, for
// the allow_domains it keeps). kInvalidArgument, nothing changed, for an
// unknown preset or too many names.
inline Result<void> ExpandPresets(const net::EgressPresets& presets, NetworkRequest& request) {
  if (request.presets.empty()) return {};
  auto domains = presets.Expand(request.presets, request.allow_domains, "network.presets");
  if (!domains) return Fail(domains.error());
  request.preset_domains = std::move(*domains);
  return {};
}
inline Result<void> ExpandPresets(const net::EgressPresets& presets, const NetworkInfo& now,
                                  NetworkUpdate& update) {
  if (!update.presets) return {};
  auto domains = presets.Expand(*update.presets, update.allow_domains.value_or(now.allow_domains), "presets");
  if (!domains) return Fail(domains.error());
  update.preset_domains = std::move(*domains);
  return {};
}

}  // namespace agentvm
