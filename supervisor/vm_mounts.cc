#include "supervisor/vm_mounts.h"

#include <filesystem>
#include <set>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

std::unexpected<Error> Invalid(std::string message) { return Fail(ErrorCode::kInvalidArgument, std::move(message)); }

Result<void> CheckPath(const std::string& path, const std::string& field) {
  if (path.empty() || path[0] != '/') return Invalid(field + " must be an absolute path, not '" + path + "'");
  if (path.size() > 1024) return Invalid(field + " is longer than 1024 bytes");
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f) return Invalid(field + " contains a control character");
  }
  for (const auto& part : fs::path(path)) {
    if (part == "." || part == "..") return Invalid(field + " must not contain '.' or '..': '" + path + "'");
  }
  return {};
}

}  // namespace

std::string NormalMountTarget(const std::string& target) {
  std::string normal = fs::path(target).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

Result<void> ValidateMounts(const std::vector<VmMount>& mounts) {
  if (mounts.size() > kMaxMounts) {
    return Invalid("at most " + std::to_string(kMaxMounts) + " mounts, not " + std::to_string(mounts.size()));
  }
  std::set<std::string> targets;
  for (std::size_t i = 0; i < mounts.size(); ++i) {
    const std::string field = "mounts[" + std::to_string(i) + "]";
    if (auto ok = CheckPath(mounts[i].source, field + ".source"); !ok) return ok;
    if (auto ok = CheckPath(mounts[i].target, field + ".target"); !ok) return ok;
    const std::string target = NormalMountTarget(mounts[i].target);
    if (target == "/") return Invalid(field + ".target must not be the guest's root '/'");
    if (!targets.insert(target).second) return Invalid(field + ".target '" + target + "' is mounted twice");
  }
  return {};
}

}  // namespace agentvm
