#include "supervisor/process_identity.h"

#include <poll.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "common/unique_fd.h"
#include "supervisor/pidfd.h"

namespace agentvm {

std::optional<std::uint64_t> ProcessStartTime(pid_t pid, const std::string& proc) {
  std::ifstream in(proc + "/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: fields are
  // counted after its last ')'.
  const std::size_t end = stat.rfind(')');
  if (end == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(end + 1));
  std::string field;
  for (int index = 3; fields >> field; ++index) {
    if (index == 22) {
      try {
        return std::stoull(field);
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

std::string ProcessCommandLine(pid_t pid, const std::string& proc) {
  std::ifstream in(proc + "/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool IsRecordedQemu(pid_t pid, std::uint64_t start_time, const std::string& runtime_dir, const std::string& proc) {
  if (pid <= 0 || runtime_dir.empty()) return false;
  const auto started = ProcessStartTime(pid, proc);
  if (!started || (start_time != 0 && *started != start_time)) return false;
  return ProcessCommandLine(pid, proc).find(runtime_dir + "/") != std::string::npos;
}

std::vector<pid_t> ProcessesWithArg(const std::string& needle, const std::string& proc) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(proc, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (ProcessCommandLine(pid, proc).find(needle) != std::string::npos) found.push_back(pid);
  }
  return found;
}

void KillStranger(pid_t pid) {
  UniqueFd pidfd(PidfdOpen(pid));
  if (!pidfd) return;  // already gone
  PidfdSendSignal(pidfd.get(), SIGKILL);
  pollfd p{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
  ::poll(&p, 1, 5000);
}

}  // namespace agentvm
