// Human-readable output of agentvm: the tables of `ls`, `pools`, `presets`
// and `snapshot ls`. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "netsetup/egress_log.h"
#include "netsetup/egress_presets.h"
#include "supervisor/vm_types.h"

namespace agentvm::cli {

// "42s", "5m", "3h", "2d"; "-" for an unknown creation time.
std::string FormatAge(std::int64_t created_at, std::int64_t now);

// "512B", "12KiB", "96MiB", "2GiB": whole units, rounded down.
std::string FormatSize(std::uint64_t bytes);

// Columns ID IMAGE STATE BOOT ADDRESS CPUS MEMORY AGE REASON, padded to
// align; a header line even when `vms` is empty. BOOT is how the guest came
// up (cold, restore, pool; "-" when agentvmd does not say). ADDRESS is the
// VM's IPv4 address, "-" when it has none (isolated, or bridge mode where
// agentvmd does not know it). REASON is why a VM failed or stopped, else why
// its restore failed and it was cold-booted instead.
std::string FormatVmTable(const std::vector<VmInfo>& vms, std::int64_t now);

// Columns NAME READY STARTING IN_USE MIN MAX TAKEN REPLACED FAILED GOLDEN
// LAST_ERROR; GOLDEN is yes or no.
std::string FormatPoolTable(const std::vector<PoolInfo>& pools);
// NAME, SOURCE, DOMAINS (comma-separated): `agentvm presets`.
std::string FormatPresetTable(const std::vector<net::EgressPreset>& presets);
// TIME TYPE NAME VERDICT ANSWERS: `agentvm egress`; with `header` false the
// rows only (-f prints the header once).
std::string FormatEgressTable(const std::vector<net::EgressEntry>& entries, bool header = true);

// Columns NAME SIZE AGE; SIZE is the saved memory and device state.
std::string FormatSnapshotTable(const std::vector<SnapshotInfo>& snapshots, std::int64_t now);

}  // namespace agentvm::cli
