// Human-readable output of agentvm: the tables of `ls`, `pools`, `presets`
// and `snapshot ls`, the lines of `events`. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
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
// TIME TYPE NAME VERDICT ADDRESSES: `agentvm egress` (a refused connection:
// its protocol, the name it was learned from, destination:port; a followed
// stream's gap: "dropped" and how many entries it lost).
std::string FormatEgressTable(const std::vector<net::EgressEntry>& entries);
// The same, one line at a time in fixed columns (`agentvm egress -f`: a
// stream cannot be measured first); each ends with '\n'.
std::string FormatEgressHeaderLine();
std::string FormatEgressLine(const net::EgressEntry& entry);

// Columns NAME SIZE AGE; SIZE is the saved memory and device state.
std::string FormatSnapshotTable(const std::vector<SnapshotInfo>& snapshots, std::int64_t now);

// One event of GET /v1/events (its NDJSON line) as one line of text:
// TIME VM TYPE then the event's other fields as key=value, e.g.
//   2026-12-04T21:22:41.530Z  vm-3f2a9c1b7d4e  exec_finished      exec=8 exit_code=0 ms=11529
// Columns are fixed (a stream cannot be measured first). A string value that
// is not plain printable ASCII without blanks, quotes or '=' is JSON-quoted,
// so what a VM's user put in a command name cannot drive the terminal.
// Ends with '\n'; an error when the line is not a JSON object.
Result<std::string> FormatEventLine(std::string_view ndjson_line);

}  // namespace agentvm::cli
