// A VM's I/O as the host sees it, for the metrics: its disks' counters from
// QMP `query-blockstats`, its NIC's from the tap's counters in sysfs. Pure
// parsing and file reads; asking QEMU is Vm::QueryBlockStats
// (vm_block_stats.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace agentvm {

// One drive's counters since QEMU started.
struct BlockIo {
  std::string drive;  // the node name ("disk0"), else the device or qdev name
  std::uint64_t read_bytes = 0;
  std::uint64_t written_bytes = 0;
  std::uint64_t read_ops = 0;
  std::uint64_t write_ops = 0;
};

// The drives of a `query-blockstats` reply; entries that are not shaped as
// QEMU documents (or name no drive) are skipped, at most 64 drives kept.
std::vector<BlockIo> ParseBlockStats(const nlohmann::json& reply);

// A tap's counters, from the VM's side: what it sent is what the tap
// received (rx_bytes), what it received is what the tap sent (tx_bytes).
struct NetIo {
  std::uint64_t transmit_bytes = 0;  // sent by the VM
  std::uint64_t receive_bytes = 0;   // received by the VM
};

// <sys>/class/net/<tap>/statistics/{rx,tx}_bytes; nullopt if the tap is
// gone or a counter cannot be read. `sys` is "/sys", or a directory laid out
// like it in tests.
std::optional<NetIo> ReadTapIo(const std::string& tap, const std::string& sys = "/sys");

}  // namespace agentvm
