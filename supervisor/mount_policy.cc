#include "supervisor/mount_policy.h"

#include <sys/statvfs.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "supervisor/vm_mounts.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

// Never shared, whatever mount_roots says: the host's configuration, kernel
// interfaces, devices and boot files.
constexpr const char* kSystemDirs[] = {"/etc", "/proc", "/sys", "/dev", "/boot"};

std::unexpected<Error> Invalid(std::string message) { return Fail(ErrorCode::kInvalidArgument, std::move(message)); }

// `path` is `dir` or inside it (both canonical, without a trailing slash).
bool Within(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.starts_with(dir) && path[dir.size()] == '/');
}

std::string Canonical(const std::string& path) {
  std::error_code ec;
  fs::path canonical = fs::canonical(path, ec);
  return ec ? path : canonical.string();
}

}  // namespace

bool IsMountedNosuid(const std::string& path) {
  struct statvfs stats {};
  return ::statvfs(path.c_str(), &stats) == 0 && (stats.f_flag & ST_NOSUID) != 0;
}

Result<std::vector<VmMount>> ResolveMounts(const std::vector<VmMount>& mounts, const MountPolicy& policy) {
  if (auto valid = ValidateMounts(mounts); !valid) return Fail(valid.error());
  if (mounts.empty()) return mounts;
  if (policy.roots.empty()) {
    return Invalid("mounts are not enabled on this host: list the directories VMs may mount under "
                   "'mount_roots:' in agentvmd's config file (docs/workspaces.md)");
  }
  std::vector<std::string> roots;
  for (const auto& root : policy.roots) roots.push_back(Canonical(root));
  std::vector<std::string> daemon_dirs;
  for (const auto& dir : policy.daemon_dirs) daemon_dirs.push_back(Canonical(dir));

  std::vector<VmMount> resolved;
  for (std::size_t i = 0; i < mounts.size(); ++i) {
    const std::string field = "mounts[" + std::to_string(i) + "].source";
    std::error_code ec;
    const std::string source = fs::canonical(mounts[i].source, ec).string();
    if (ec) return Invalid(field + " '" + mounts[i].source + "': " + ec.message());
    if (!fs::is_directory(source, ec)) return Invalid(field + " '" + mounts[i].source + "' is not a directory");
    auto refused = [&](const std::string& why) {
      return Invalid(field + " '" + mounts[i].source + "'" +
                     (source == mounts[i].source ? "" : " (" + source + ")") + " is refused: " + why);
    };
    if (source == "/") return refused("the host's root is never mounted");
    for (const char* dir : kSystemDirs) {
      if (Within(source, dir)) return refused(std::string("it is in ") + dir + ", which is never mounted");
    }
    for (const auto& dir : daemon_dirs) {
      if (Within(source, dir) || Within(dir, source)) return refused("it holds or is in agentvmd's own " + dir);
    }
    const bool allowed = std::any_of(roots.begin(), roots.end(), [&](const auto& root) { return Within(source, root); });
    if (!allowed) {
      std::string list;
      for (const auto& root : roots) list += (list.empty() ? "" : ", ") + root;
      return refused("it is not under a mount root (" + list + "; 'mount_roots:' in agentvmd's config)");
    }
    if (!mounts[i].readonly && !policy.mounted_nosuid(source)) {
      return refused(
          "a read-write source must be on a file system mounted nosuid on the host (virtiofsd keeps the modes "
          "a guest sets, so a guest's root could leave a setuid-root program in it): mount it :ro, or mount "
          "the file system (or a bind mount of the root) nosuid, e.g. mount --bind " + source + " " + source +
          " && mount -o remount,bind,nosuid " + source);
    }
    VmMount mount = mounts[i];
    mount.source = source;
    mount.target = NormalMountTarget(mounts[i].target);
    resolved.push_back(std::move(mount));
  }
  return resolved;
}

std::string MountsToRecord(const std::vector<VmMount>& mounts) {
  if (mounts.empty()) return "";
  nlohmann::json list = nlohmann::json::array();
  for (const auto& mount : mounts) {
    list.push_back({{"source", mount.source}, {"target", mount.target}, {"readonly", mount.readonly}});
  }
  return list.dump();
}

std::vector<VmMount> MountsFromRecord(const std::string& record) {
  std::vector<VmMount> mounts;
  const auto list = nlohmann::json::parse(record, nullptr, false);
  if (!list.is_array()) return mounts;
  for (const auto& item : list) {
    if (!item.is_object()) continue;
    mounts.push_back(VmMount{.source = item.value("source", ""),
                             .target = item.value("target", ""),
                             .readonly = item.value("readonly", false)});
  }
  return mounts;
}

}  // namespace agentvm
