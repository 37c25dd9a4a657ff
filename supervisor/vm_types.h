// The supervisor's vocabulary as plain data: VM states, create requests,
// what a VM, a pool and a snapshot look like from outside. Shared by the
// daemon, its API layer and the CLI; no asio, no I/O, so a client that only
// speaks the wire format never pulls in the daemon's machinery.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentvm {

enum class VmState { kCreating, kStarting, kRunning, kStopping, kStopped, kFailed };

inline std::string_view VmStateName(VmState state) {
  switch (state) {
    case VmState::kCreating: return "creating";
    case VmState::kStarting: return "starting";
    case VmState::kRunning: return "running";
    case VmState::kStopping: return "stopping";
    case VmState::kStopped: return "stopped";
    case VmState::kFailed: return "failed";
  }
  return "failed";
}

// The inverse of VmStateName; nullopt for any other string.
inline std::optional<VmState> VmStateFromName(std::string_view name) {
  for (VmState state : {VmState::kCreating, VmState::kStarting, VmState::kRunning, VmState::kStopping,
                        VmState::kStopped, VmState::kFailed}) {
    if (VmStateName(state) == name) return state;
  }
  return std::nullopt;
}

// How a VM reaches the network (docs/network.md):
//   nat-filtered: tap on the daemon's bridge, NAT out, egress whitelist.
//   isolated:     no network device at all; the control channel still works.
//   bridge:       tap on a bridge the operator names, no filter (unsafe).
enum class NetworkMode { kNatFiltered, kIsolated, kBridge };

inline std::string_view NetworkModeName(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kNatFiltered: return "nat-filtered";
    case NetworkMode::kIsolated: return "isolated";
    case NetworkMode::kBridge: return "bridge";
  }
  return "isolated";
}

inline std::optional<NetworkMode> NetworkModeFromName(std::string_view name) {
  for (NetworkMode mode : {NetworkMode::kNatFiltered, NetworkMode::kIsolated, NetworkMode::kBridge}) {
    if (NetworkModeName(mode) == name) return mode;
  }
  return std::nullopt;
}

struct NetworkRequest {
  std::optional<NetworkMode> mode;  // unset: the daemon's default
  // nat-filtered only: TCP ports and destination subnets allowed on top of
  // the daemon's whitelist ("203.0.113.0/24", "198.51.100.7/32").
  std::vector<std::uint16_t> allow_tcp_ports;
  std::vector<std::string> allow_cidrs;
  // nat-filtered only: when not empty, the only names the VM may resolve
  // ("api.example.com", "*.example.com"), and TCP goes only to the
  // addresses their answers gave (and allow_cidrs). docs/network.md.
  std::vector<std::string> allow_domains;
  // nat-filtered only: named domain lists (netsetup/egress_presets.h) the
  // VM may also resolve.
  std::vector<std::string> presets;
  // The names `presets` expand to, filled in by the daemon (never read from
  // a client) when it creates the VM.
  std::vector<std::string> preset_domains;
  std::string bridge;  // bridge mode only: the operator's bridge
  std::optional<std::uint64_t> bandwidth_bytes_per_sec;  // each direction
};

// How Create brings a VM up (docs/snapshots.md):
//   auto:    a ready VM from a matching warm pool; else a restore of the
//            profile's golden snapshot; else a cold boot.
//   restore: skip the pool; restore (building the golden snapshot first if
//            there is none), falling back to a cold boot if the restore fails.
//   cold:    always a cold boot (a fresh kernel boot, no snapshot involved).
enum class BootMode { kAuto, kRestore, kCold };

inline std::string_view BootModeName(BootMode mode) {
  switch (mode) {
    case BootMode::kAuto: return "auto";
    case BootMode::kRestore: return "restore";
    case BootMode::kCold: return "cold";
  }
  return "auto";
}

inline std::optional<BootMode> BootModeFromName(std::string_view name) {
  for (BootMode mode : {BootMode::kAuto, BootMode::kRestore, BootMode::kCold}) {
    if (BootModeName(mode) == name) return mode;
  }
  return std::nullopt;
}

// The sizes a VM may have: the API, the config (pools) and the CLI all hold
// requests to these.
inline constexpr int kMinCpus = 1;
inline constexpr int kMaxCpus = 64;
inline constexpr int kMinMemoryMib = 64;
inline constexpr int kMaxMemoryMib = 65536;

// A host directory shared into a VM over virtiofs (docs/workspaces.md).
struct VmMount {
  std::string source;  // absolute host directory; canonical once the daemon accepted it
  std::string target;  // absolute directory in the guest, mounted before any exec runs
  bool readonly = false;  // read-only in the guest and on the host side
};

inline constexpr std::size_t kMaxMounts = 8;

// A uid and gid pair: a host user (an API caller, a mount's owner) or a
// user of the guest.
struct UserIds {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  bool operator==(const UserIds&) const = default;
};

struct CreateVmRequest {
  std::string image = "tiny";
  int cpus = 1;
  int memory_mib = 256;
  NetworkRequest network;
  BootMode boot = BootMode::kAuto;
  std::vector<VmMount> mounts;  // a VM with mounts always cold-boots
  // Who asked (SO_PEERCRED of the API connection), when known: owns what
  // the guest's default user creates in the mounts, unless the operator
  // set mount_owner (docs/workspaces.md).
  std::optional<UserIds> caller;
};

struct NetworkInfo {
  NetworkMode mode = NetworkMode::kIsolated;
  std::string address;  // nat-filtered: the leased address
  std::string gateway;
  std::string dns;
  std::string mac;
  std::string tap;
  std::string bridge;
  std::vector<std::uint16_t> allow_tcp_ports;
  std::vector<std::string> allow_cidrs;
  // The names the VM may resolve are allow_domains (given by name) and
  // preset_domains (what its presets expanded to when they were given, so a
  // later change of an operator's preset does not reach it): kept apart so
  // that removing a preset removes only its names (EnforcedDomains in
  // network_update.h merges them).
  std::vector<std::string> allow_domains;
  std::vector<std::string> presets;
  std::vector<std::string> preset_domains;
  std::optional<std::uint64_t> bandwidth_bytes_per_sec;
  // New outbound connections the whitelist dropped (nat-filtered).
  std::uint64_t dropped_connections = 0;
  // DNS questions of a domain-filtered VM by verdict ("allowed", "refused",
  // "refused-type", "failed") while it runs (netsetup/dns_policy.h).
  std::map<std::string, std::uint64_t> dns_queries;
};

struct VmInfo {
  std::string id;
  std::string image;
  VmState state = VmState::kCreating;
  int cpus = 0;
  int memory_mib = 0;
  std::optional<int> pid;   // QEMU's pid while it runs
  std::string channel;      // "vsock" or "virtio-serial"
  std::string accel;        // "kvm" or "tcg"
  std::string reason;       // why it failed or stopped, empty otherwise
  std::int64_t created_at = 0;  // unix seconds
  NetworkInfo network;
  // How the guest came up: "cold" (kernel boot), "restore" (a clone of the
  // golden snapshot), or "pool" (a restored clone that waited in a pool).
  std::string boot;
  // Set when a restore was tried and failed, so the VM was cold-booted instead.
  std::string restore_error;
  std::string pool;  // the pool it was taken from, if any
  // Why the control channel to its agent failed while the VM ran (the guest
  // stopped reading, or broke the protocol too often); empty otherwise.
  // Exec, files and ping then fail with this reason.
  std::string guest_channel_error;
  std::vector<VmMount> mounts;
  // With mounts: the host user the guest's default user writes as.
  std::optional<UserIds> mount_owner;
};

// A named snapshot of one VM: memory, devices and disk at one moment.
struct SnapshotInfo {
  std::string name;
  std::uint64_t vm_state_bytes = 0;  // size of the saved memory and device state
  std::int64_t created_at = 0;       // unix seconds
};

// One warm pool, as configured and as it is now.
struct PoolInfo {
  std::string name;  // "<image>-<cpus>c-<memory>m-<network>", e.g. "tiny-1c-256m-isolated"
  std::string image;
  int cpus = 1;
  int memory_mib = 256;
  NetworkMode network = NetworkMode::kIsolated;
  int min_ready = 0;
  int max_total = 0;
  int fill_parallelism = 1;  // clones restored at once (the configured 0 resolved)
  int ready = 0;     // restored, agent answering, waiting to be taken
  int starting = 0;  // being restored for the pool now
  int in_use = 0;    // taken and not yet released or removed
  std::uint64_t taken = 0;     // VMs handed out since the daemon started
  std::uint64_t replaced = 0;  // ready VMs discarded for a failed health check or their TTL
  std::uint64_t failed = 0;    // clones that failed to come up
  bool golden_ready = false;   // the profile's golden snapshot exists
  std::string last_error;      // the latest failure to fill the pool, if any
};

}  // namespace agentvm
