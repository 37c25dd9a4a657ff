// Human-readable output of agentvm: the `ls` table. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <utility>  // Boost 1.74's awaitable.hpp (via vm_service.h) needs std::exchange

#include "supervisor/vm_service.h"

namespace agentvm::cli {

// "42s", "5m", "3h", "2d"; "-" for an unknown creation time.
std::string FormatAge(std::int64_t created_at, std::int64_t now);

// Columns ID IMAGE STATE ADDRESS CPUS MEMORY AGE REASON, padded to align; a
// header line even when `vms` is empty. ADDRESS is the VM's IPv4 address, "-"
// when it has none (isolated, or bridge mode where agentvmd does not know it).
std::string FormatVmTable(const std::vector<VmInfo>& vms, std::int64_t now);

}  // namespace agentvm::cli
