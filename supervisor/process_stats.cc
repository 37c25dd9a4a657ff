#include "supervisor/process_stats.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace agentvm {

std::optional<ProcessStats> ReadProcessStats(pid_t pid, const std::string& proc) {
  const std::string dir = proc + "/" + std::to_string(pid);
  std::ifstream stat_file(dir + "/stat");
  std::string stat;
  if (!std::getline(stat_file, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields are
  // counted from the last ')'. utime and stime are fields 14 and 15.
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number == 14) utime = std::stoull(field);
    if (number == 15) stime = std::stoull(field);
  }
  if (!fields) return std::nullopt;
  static const long kTicks = ::sysconf(_SC_CLK_TCK);
  ProcessStats stats;
  stats.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(kTicks > 0 ? kTicks : 100);

  std::ifstream status(dir + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream value(line.substr(6));
      std::uint64_t kib = 0;
      value >> kib;
      stats.resident_bytes = kib * 1024;
    }
  }
  return stats;
}

std::optional<std::uint64_t> CountOpenFds(pid_t pid, const std::string& proc) {
  std::error_code ec;
  std::uint64_t count = 0;
  for (std::filesystem::directory_iterator it(proc + "/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec)) {
    ++count;
  }
  if (ec) return std::nullopt;
  return count;
}

}  // namespace agentvm
