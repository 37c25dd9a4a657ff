// The daemon's configuration: defaults, overridden by a YAML file, overridden
// by command-line flags. Plain data once loaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "supervisor/vm_types.h"

namespace agentvm {

// One warm pool (docs/snapshots.md): VMs of one profile kept restored and
// ready, so a matching create is a hand-over instead of a boot.
struct PoolConfig {
  std::string image = "tiny";
  int cpus = 1;
  int memory_mib = 256;
  std::string network = "nat-filtered";  // nat-filtered | isolated (bridge VMs are never pooled)
  int min_ready = 1;                     // restored and waiting, refilled as VMs are taken
  int max_total = 4;                     // ready + starting + taken and not yet released
  std::chrono::seconds ttl{3600};        // a ready VM older than this is replaced
  int fill_parallelism = 0;              // clones restored at once; 0: one per two host cores, at least 1
};

// The confinement of every QEMU (supervisor/jail_plan.h, docs/security.md).
struct JailConfig {
  bool enabled = true;       // `jail: off`: QEMU runs as root in the daemon's namespaces
  int uid_base = 200000;     // VM slot n runs as uid_base + n, gid gid_base + n
  int gid_base = 200000;
  int slots = 4096;          // concurrent jailed QEMUs
  std::string cgroup_name = "agentvm";  // parent cgroup under each hierarchy
  int memory_overhead_mib = 256;        // QEMU's own memory beyond guest RAM
  // TCG's translated-code cache grows to 1 GiB over a long run (QEMU's
  // default tb-size on 64-bit hosts), all of it charged to QEMU.
  int tcg_overhead_mib = 1024;
  int pids_max = 512;      // threads: vCPUs, I/O workers (up to 64), RCU, ...
  int cpu_weight = 100;    // cgroup v2 cpu.weight; v1 cpu.shares = weight * 1024 / 100
  int nofile = 4096;       // RLIMIT_NOFILE
  // A mount's virtiofsd: its own memory, and the kernel's for the files it
  // holds open for the guest (one per file the guest has looked up).
  int virtiofsd_memory_mib = 512;
};

struct DaemonConfig {
  std::string socket_path = "/run/agentvm/agentvm.sock";
  std::string state_dir = "/var/lib/agentvm";        // agentvm.db, VM disks
  std::string image_dir = "/var/lib/agentvm/images";
  std::string run_dir = "/run/agentvm";              // per-VM sockets and logs
  std::string accel = "auto";                        // auto | kvm | tcg
  std::string qemu_binary = "qemu-system-x86_64";
  std::string qemu_img_binary = "qemu-img";
  std::string log_level = "info";
  // One JSON line per changing API call (docs/operations.md, "Audit log");
  // empty: off, the default.
  std::string audit_log;
  // ADDRESS:PORT where GET /metrics is also served on TCP (docs/
  // operations.md, "Metrics"); empty: only on the API socket, the default.
  std::string metrics_listen;
  std::chrono::seconds agent_timeout{90};  // boot to agent answering, TCG is slow
  std::chrono::seconds stop_grace{10};     // agent/ACPI power-off before kill
  int default_cpus = 1;
  int default_memory_mib = 256;
  // Each VM's serial console (docs/security.md): the tail kept in memory
  // (what `agentvm logs` shows) and the most kept on disk in the run dir.
  int console_memory_kib = 128;
  int console_file_kib = 1024;
  // On SIGTERM, exit at once and leave every VM running for the next
  // agentvmd to adopt (docs/operations.md), instead of stopping them.
  bool keep_vms_on_exit = false;

  // Network (docs/network.md). The bridge and ruleset are made when the
  // first VM with a NIC starts and removed when the daemon stops.
  std::string default_network = "nat-filtered";  // nat-filtered | isolated | bridge
  std::string bridge = "agentvm0";
  std::string subnet = "10.101.0.0/16";           // the bridge takes the first address
  std::string dns_upstream;                       // "a.b.c.d[:port]"; empty: /etc/resolv.conf
  std::vector<std::uint16_t> allowed_tcp_ports = {22, 80, 443, 9418};
  // A refused connection gets a TCP reset / ICMP admin-prohibited (true) or
  // is dropped silently (false); counted either way.
  bool reject_refused_connections = true;
  // Tracked connections one VM may hold at once; a new one beyond is refused
  // (one guest must not fill the host's conntrack table). 1..1048576.
  int max_connections_per_vm = 1024;
  // The nfnetlink_log group refused connections are logged to (the egress
  // log's "refused" entries); one listener per group and network namespace,
  // so another NFLOG user (ulogd) must be on another. 0..65535.
  int egress_log_group = 7100;
  // The operator's egress presets (netsetup/egress_presets.h): name -> the
  // domain patterns a VM created with `network.presets: [name]` may resolve,
  // on top of the built-in ones, whose names they may not take.
  std::map<std::string, std::vector<std::string>> egress_presets;

  // Snapshots and pools (docs/snapshots.md).
  bool golden_snapshots = true;  // false: every VM cold-boots; no pools
  // How a golden snapshot keeps guest RAM: `cow`, a template every clone
  // maps copy-on-write (restores copy no RAM, clones share what they only
  // read); `copy`, a full copy in the migration stream each clone loads.
  std::string memory_templates = "cow";
  std::vector<PoolConfig> pools;
  std::chrono::seconds health_check_interval{30};  // how often ready pool VMs are pinged

  JailConfig jail;

  // Workspaces (docs/workspaces.md): the host directories whose trees VMs
  // may mount. Empty: every mount is refused.
  std::vector<std::string> mount_roots;
  std::string virtiofsd_binary = "/usr/lib/qemu/virtiofsd";
  // virtiofsd's -o cache=: auto (what the guest caches is checked again
  // after a second, so host edits show), always (never checked: fastest,
  // for shares nothing else changes), none (docs/workspaces.md).
  std::string virtiofs_cache = "auto";
  // Who owns what the guest's default user creates in a mount: set
  // ("UID:GID"), every VM's; unset ("" in the YAML), the API caller's uid
  // and gid (SO_PEERCRED).
  std::optional<UserIds> mount_owner;
};

// "UID:GID", two numbers below 2^31 (mount_owner).
Result<UserIds> ParseUserIds(std::string_view text);

// Applies the keys of a YAML file (same names as the fields above; durations
// as `agent_timeout_sec`, `stop_grace_sec`, `health_check_interval_sec`;
// allowed_tcp_ports a list; pools a list of maps with the PoolConfig keys,
// ttl as `ttl_sec`; jail `off`, `on` or a map with the JailConfig keys, plus
// `enabled`; egress_presets a map of preset name to a list of domain
// patterns). Unknown keys are errors, so a typo never silently runs
// with a default.
Result<void> ApplyConfigFile(const std::string& path, DaemonConfig& config);

// One pool from agentvmd's --pool flag: "image=tiny,cpus=1,memory_mib=256,
// network=isolated,min_ready=3,max_total=6,ttl_sec=600", any subset, the rest
// PoolConfig's defaults. Checks the syntax only; ValidateConfig the values.
Result<PoolConfig> ParsePoolSpec(std::string_view spec);

// Checks values that would otherwise fail much later (relative paths, commas
// QEMU would split on, out-of-range numbers).
Result<void> ValidateConfig(const DaemonConfig& config);

// metrics_listen: "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464" (an IP
// literal, not a name; the port 1-65535).
struct MetricsListenAddress {
  std::string host;
  std::uint16_t port = 0;
};
Result<MetricsListenAddress> ParseMetricsListen(const std::string& text);
Result<void> ValidateNetworkConfig(const DaemonConfig& config);

}  // namespace agentvm
