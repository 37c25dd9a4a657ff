#include "supervisor/cli/cli_format.h"

#include <algorithm>
#include <array>

#include "supervisor/api/json_codec.h"

namespace agentvm::cli {

std::string FormatAge(std::int64_t created_at, std::int64_t now) {
  if (created_at <= 0) return "-";
  std::int64_t seconds = std::max<std::int64_t>(0, now - created_at);
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m";
  if (seconds < 86400) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds / 86400) + "d";
}

std::string FormatVmTable(const std::vector<VmInfo>& vms, std::int64_t now) {
  constexpr std::size_t kColumns = 8;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> rows;
  rows.push_back({"ID", "IMAGE", "STATE", "ADDRESS", "CPUS", "MEMORY", "AGE", "REASON"});
  for (const VmInfo& vm : vms) {
    rows.push_back({vm.id, vm.image, std::string(VmStateName(vm.state)),
                    vm.network.address.empty() ? "-" : vm.network.address,
                    std::to_string(vm.cpus), std::to_string(vm.memory_mib) + "MiB",
                    FormatAge(vm.created_at, now), vm.reason});
  }
  std::array<std::size_t, kColumns> widths{};
  for (const Row& row : rows) {
    for (std::size_t i = 0; i < kColumns; ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < kColumns; ++i) {
      line += row[i];
      if (i + 1 < kColumns) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace agentvm::cli
