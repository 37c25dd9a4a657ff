// The daemon's configuration: defaults, overridden by a YAML file, overridden
// by command-line flags. Plain data once loaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace agentvm {

struct DaemonConfig {
  std::string socket_path = "/run/agentvm/agentvm.sock";
  std::string state_dir = "/var/lib/agentvm";        // agentvm.db, VM disks
  std::string image_dir = "/var/lib/agentvm/images";
  std::string run_dir = "/run/agentvm";              // per-VM sockets and logs
  std::string accel = "auto";                        // auto | kvm | tcg
  std::string qemu_binary = "qemu-system-x86_64";
  std::string qemu_img_binary = "qemu-img";
  std::string log_level = "info";
  std::chrono::seconds agent_timeout{90};  // boot to agent answering, TCG is slow
  std::chrono::seconds stop_grace{10};     // agent/ACPI power-off before kill
  int default_cpus = 1;
  int default_memory_mib = 256;

  // Network (docs/network.md). The bridge and ruleset are made when the
  // first VM with a NIC starts and removed when the daemon stops.
  std::string default_network = "nat-filtered";  // nat-filtered | isolated | bridge
  std::string bridge = "agentvm0";
  std::string subnet = "10.101.0.0/16";           // the bridge takes the first address
  std::string dns_upstream;                       // "a.b.c.d[:port]"; empty: /etc/resolv.conf
  std::vector<std::uint16_t> allowed_tcp_ports = {22, 80, 443, 9418};
};

// Applies the keys of a YAML file (same names as the fields above; durations
// as `agent_timeout_sec`, `stop_grace_sec`; allowed_tcp_ports a list). Unknown keys are errors, so a
// typo never silently runs with a default.
Result<void> ApplyConfigFile(const std::string& path, DaemonConfig& config);

// Checks values that would otherwise fail much later (relative paths, commas
// QEMU would split on, out-of-range numbers).
Result<void> ValidateConfig(const DaemonConfig& config);
Result<void> ValidateNetworkConfig(const DaemonConfig& config);

}  // namespace agentvm
