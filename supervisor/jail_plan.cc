#include "supervisor/jail_plan.h"

#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "supervisor/vm_host.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

// Devices every QEMU may open besides the launch's own: /dev/null for its
// stdio and block layer probes.
constexpr const char* kBaseDevices[] = {"/dev/null"};

// True when `path` is `dir` or lies below it.
bool Within(const std::string& path, const std::string& dir) {
  return path == dir || (path.starts_with(dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

void AddParents(const std::string& path, std::set<std::string>& dirs) {
  for (fs::path p = fs::path(path).parent_path(); p != p.root_path() && !p.empty(); p = p.parent_path()) {
    dirs.insert(p.string());
  }
}

CgroupPlan PlanCgroups(const JailConfig& config, const CgroupHost& host, const std::string& vm_id,
                       std::uint64_t memory_limit) {
  CgroupPlan plan;
  const std::string pids = std::to_string(config.pids_max);
  if (host.version == CgroupVersion::kV2) {
    const std::string parent = host.v2_root + "/" + config.cgroup_name;
    const std::string leaf = parent + "/" + vm_id;
    plan.create = {parent, leaf};
    // v2 hands a controller to a child only when its parent enables it.
    plan.writes = {
        {host.v2_root + "/cgroup.subtree_control", "+memory +pids +cpu"},
        {parent + "/cgroup.subtree_control", "+memory +pids +cpu"},
        {leaf + "/memory.max", std::to_string(memory_limit)},
        {leaf + "/pids.max", pids},
        {leaf + "/cpu.weight", std::to_string(config.cpu_weight)},
    };
    plan.join = {leaf + "/cgroup.procs"};
    plan.remove = {leaf};
    return plan;
  }
  auto leaf_of = [&](const std::string& controller) {
    const std::string parent = host.v1_roots.at(controller) + "/" + config.cgroup_name;
    plan.create.push_back(parent);
    plan.create.push_back(parent + "/" + vm_id);
    plan.join.push_back(parent + "/" + vm_id + "/cgroup.procs");
    plan.remove.push_back(parent + "/" + vm_id);
    return parent + "/" + vm_id;
  };
  plan.writes.push_back({leaf_of("memory") + "/memory.limit_in_bytes", std::to_string(memory_limit)});
  plan.writes.push_back({leaf_of("pids") + "/pids.max", pids});
  // v1's cpu.shares is 1024 where v2's cpu.weight is 100.
  plan.writes.push_back({leaf_of("cpu") + "/cpu.shares", std::to_string(config.cpu_weight * 1024 / 100)});
  return plan;
}

std::string VirtiofsdCgroupName(const std::string& vm_id, int index) {
  return vm_id + ".fs" + std::to_string(index);
}

}  // namespace

CgroupPlan VirtiofsdCgroupPlan(const std::string& vm_id, int index, const JailConfig& config, const CgroupHost& host) {
  return PlanCgroups(config, host, VirtiofsdCgroupName(vm_id, index),
                     static_cast<std::uint64_t>(config.virtiofsd_memory_mib) << 20);
}

std::vector<std::string> JailCgroupDirs(const std::string& vm_id, const JailConfig& config, const CgroupHost& host) {
  std::vector<std::string> dirs = PlanCgroups(config, host, vm_id, 0).remove;
  for (std::size_t i = 0; i < kMaxMounts; ++i) {
    for (auto& dir : PlanCgroups(config, host, VirtiofsdCgroupName(vm_id, static_cast<int>(i)), 0).remove) {
      dirs.push_back(std::move(dir));
    }
  }
  return dirs;
}

std::uint64_t JailMemoryLimit(int memory_mib, bool tcg, const JailConfig& config) {
  const std::uint64_t mib = static_cast<std::uint64_t>(memory_mib) + config.memory_overhead_mib +
                            (tcg ? config.tcg_overhead_mib : 0);
  return mib << 20;
}

JailPlan MakeJailPlan(const QemuLaunch& launch, const JailConfig& config, const JailHost& host, int slot) {
  JailPlan plan{
      .vm_id = launch.vm_id,
      .uid = static_cast<uid_t>(config.uid_base + slot),
      .gid = static_cast<gid_t>(config.gid_base + slot),
      .program = host.qemu_path,
      .root_dir = host.root_dir,
      .mount_proc = launch.opens_fds_by_path,
      .owned_paths = launch.writable_paths,
      .rlimits = {{RLIMIT_NOFILE, static_cast<std::uint64_t>(config.nofile)},
                  // Per uid, and the uid is this VM's alone: QEMU's threads.
                  {RLIMIT_NPROC, static_cast<std::uint64_t>(config.pids_max)},
                  {RLIMIT_CORE, 0}},
      .memory_limit_bytes = JailMemoryLimit(launch.memory_mib, launch.accel == Accel::kTcg, config),
  };
  plan.cgroups = PlanCgroups(config, host.cgroups, launch.vm_id, plan.memory_limit_bytes);

  std::vector<std::string> visible_dirs;  // read-only directories already mounted whole
  for (const auto& system : host.system_paths) {
    if (!system.link_target.empty()) {
      plan.symlinks.push_back(system);
      continue;
    }
    plan.mounts.push_back({.source = system.path, .target = system.path, .directory = true});
    visible_dirs.push_back(system.path);
  }
  auto visible = [&](const std::string& path) {
    return std::any_of(visible_dirs.begin(), visible_dirs.end(),
                       [&](const std::string& dir) { return Within(path, dir); });
  };
  auto add = [&](BindMount mount) {
    if (mount.read_only && visible(mount.target)) return;  // already there, read-only
    plan.mounts.push_back(std::move(mount));
  };
  add({.source = host.qemu_path, .target = host.qemu_path});
  for (const auto& path : launch.read_only_paths) add({.source = path, .target = path});
  for (std::size_t i = 0; i < launch.writable_paths.size(); ++i) {
    // The first writable path is the runtime directory (QemuLaunchFor).
    const std::string& path = launch.writable_paths[i];
    add({.source = path, .target = path, .directory = i == 0, .read_only = false});
  }
  std::vector<std::string> devices(std::begin(kBaseDevices), std::end(kBaseDevices));
  devices.insert(devices.end(), launch.devices.begin(), launch.devices.end());
  for (const auto& device : devices) {
    if (std::find_if(plan.mounts.begin(), plan.mounts.end(), [&](const BindMount& m) {
          return m.target == device;
        }) != plan.mounts.end()) {
      continue;
    }
    plan.mounts.push_back({.source = device, .target = device, .read_only = false, .device = true});
  }

  // Directory mounts before what lies inside them, each target's parents
  // made in the tmpfs first.
  std::stable_sort(plan.mounts.begin(), plan.mounts.end(),
                   [](const BindMount& a, const BindMount& b) { return a.target < b.target; });
  std::set<std::string> dirs;
  for (const auto& mount : plan.mounts) AddParents(mount.target, dirs);
  for (const auto& link : plan.symlinks) AddParents(link.path, dirs);
  for (const auto& dir : dirs) {
    if (!visible(dir)) plan.dirs.push_back(dir);  // std::set: parents sort first
  }
  return plan;
}

}  // namespace agentvm
