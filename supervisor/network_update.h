// A change to a running VM's egress policy (PATCH /v1/vms/{id}/network,
// `agentvm net`): each field given replaces the VM's current value, the
// others stay as they are. Plain data and one pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/vm_types.h"

namespace agentvm {

struct NetworkUpdate {
  std::optional<std::vector<std::uint16_t>> allow_tcp_ports;
  std::optional<std::vector<std::string>> allow_cidrs;
  std::optional<std::vector<std::string>> allow_domains;
  // Outer: whether the field was given; inner nullopt: no limit any more.
  std::optional<std::optional<std::uint64_t>> bandwidth_bytes_per_sec;

  bool empty() const { return !allow_tcp_ports && !allow_cidrs && !allow_domains && !bandwidth_bytes_per_sec; }
};

// `info` with the fields `update` gives replaced.
inline NetworkInfo ApplyNetworkUpdate(NetworkInfo info, const NetworkUpdate& update) {
  if (update.allow_tcp_ports) info.allow_tcp_ports = *update.allow_tcp_ports;
  if (update.allow_cidrs) info.allow_cidrs = *update.allow_cidrs;
  if (update.allow_domains) info.allow_domains = *update.allow_domains;
  if (update.bandwidth_bytes_per_sec) info.bandwidth_bytes_per_sec = *update.bandwidth_bytes_per_sec;
  return info;
}

}  // namespace agentvm
