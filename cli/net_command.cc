#include "cli/net_command.h"

#include <algorithm>
#include <type_traits>

#include "cli/api_client.h"
#include "cli/cli_args.h"
#include "cli/write_all.h"

namespace agentvm::cli {
namespace {

// `list` with `add` appended (what it lacks) and `remove` taken out; nullopt
// when that leaves it as it was.
template <class T>
std::optional<std::vector<T>> Edited(const std::vector<T>& list, const std::vector<T>& add,
                                     const std::vector<T>& remove) {
  std::vector<T> out;
  for (const T& item : list) {
    if (std::find(remove.begin(), remove.end(), item) == remove.end()) out.push_back(item);
  }
  for (const T& item : add) {
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  }
  if (out == list) return std::nullopt;
  return out;
}

template <class T>
std::string Joined(const std::vector<T>& items) {
  if (items.empty()) return "-";
  std::string text;
  for (const T& item : items) {
    if (!text.empty()) text += ", ";
    if constexpr (std::is_same_v<T, std::string>) {
      text += item;
    } else {
      text += std::to_string(item);
    }
  }
  return text;
}

}  // namespace

NetworkUpdate PlanNetworkUpdate(const NetworkInfo& current, const NetChange& change) {
  NetworkUpdate update;
  update.allow_domains = Edited(current.allow_domains, change.allow_domains, change.deny_domains);
  update.presets = Edited(current.presets, change.presets, change.no_presets);
  update.allow_tcp_ports = Edited(current.allow_tcp_ports, change.allow_ports, change.deny_ports);
  update.allow_cidrs = Edited(current.allow_cidrs, change.allow_cidrs, change.deny_cidrs);
  if (change.bandwidth && *change.bandwidth != current.bandwidth_bytes_per_sec) {
    update.bandwidth_bytes_per_sec = *change.bandwidth;
  }
  return update;
}

std::string FormatEgressPolicy(const NetworkInfo& network) {
  return "mode:            " + std::string(NetworkModeName(network.mode)) + "\n" +
         "allow_domains:   " + Joined(network.allow_domains) + "\n" +
         "presets:         " + Joined(network.presets) + "\n" +
         "preset_domains:  " + Joined(network.preset_domains) + "\n" +
         "allow_tcp_ports: " + Joined(network.allow_tcp_ports) + "\n" +
         "allow_cidrs:     " + Joined(network.allow_cidrs) + "\n" +
         "bandwidth:       " +
         (network.bandwidth_bytes_per_sec ? std::to_string(*network.bandwidth_bytes_per_sec) + " B/s each way"
                                          : std::string("unlimited")) +
         "\n";
}

int Net(const CliCommand& command, ApiClient& client, const CliContext& context) {
  auto fail = [&](const Error& error) {
    WriteAll(context.err_fd, "agentvm: " + error.message + "\n");
    return 1;
  };
  const std::string& id = command.ids.front();
  auto vm = client.GetVm(id);
  if (!vm) return fail(vm.error());
  const NetworkUpdate update = PlanNetworkUpdate(vm->network, command.net);
  // An empty list means no name filter at all: taking off the last name
  // (or preset) must not silently open every name.
  const bool had_names = !vm->network.allow_domains.empty() || !vm->network.preset_domains.empty();
  const bool names_left = !update.allow_domains.value_or(vm->network.allow_domains).empty() ||
                          !update.presets.value_or(vm->network.presets).empty();
  if (had_names && !names_left) {
    return fail(Error{ErrorCode::kInvalidArgument,
                      "--deny-domain/--no-preset would take the last name off " + id +
                          "'s list, and an empty list lets it resolve every name; allow another name first, "
                          "or lift the filter on purpose with PATCH /v1/vms/" + id +
                          "/network {\"allow_domains\": [], \"presets\": []}"});
  }
  if (!update.empty()) {
    vm = client.UpdateNetwork(id, update);
    if (!vm) return fail(vm.error());
  }
  WriteAll(context.out_fd, FormatEgressPolicy(vm->network));
  return 0;
}

}  // namespace agentvm::cli
