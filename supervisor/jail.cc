#include "supervisor/jail.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/logging.h"
#include "supervisor/child_process.h"
#include "supervisor/jail_spawn.h"
#include "supervisor/kernel_file.h"
#include "supervisor/vm_host.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> Log() { return Logger("jail"); }

constexpr const char* kControllers[] = {"memory", "pids", "cpu"};

// What QEMU's binary and its shared libraries live in (the ELF interpreter
// is /lib64/ld-linux-x86-64.so.2). Nothing QEMU never reads, such as /etc.
constexpr const char* kSystemPaths[] = {"/usr", "/lib", "/lib64"};

// A jail's resources on the host: its cgroups, and the VM's writable files
// handed to its uid. Given back (cgroups removed, files back to root) when
// QEMU is gone; pinned by O_PATH fds so a rename (a golden VM's overlay
// becomes its frozen disk) does not lose them.
// rmdir of a cgroup, waiting briefly while its last task is being reaped;
// false (and a warning) when it stays.
bool RemoveCgroup(const std::string& vm_id, const std::string& dir) {
  for (int attempt = 0; ::rmdir(dir.c_str()) != 0 && errno != ENOENT; ++attempt) {
    if (errno != EBUSY || attempt == 250) {
      Log()->warn("{}: cannot remove cgroup {}: {}", vm_id, dir, std::strerror(errno));
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(4));
  }
  return true;
}

class JailResources {
 public:
  static Result<std::unique_ptr<JailResources>> Create(const JailPlan& plan) {
    std::unique_ptr<JailResources> made(new JailResources(plan.vm_id));
    for (const auto& dir : plan.cgroups.create) {
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Fail(ErrnoError("jail: mkdir " + dir, errno));
    }
    made->cgroups_ = plan.cgroups.remove;
    for (const auto& write : plan.cgroups.writes) {
      if (auto wrote = WriteKernelFile(write.file, write.value); !wrote) return Fail(wrote.error().Wrap("jail"));
    }
    for (const auto& path : plan.owned_paths) {
      const int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Fail(ErrnoError("jail: open " + path, errno));
      made->owned_.push_back(fd);
      if (::fchownat(fd, "", plan.uid, plan.gid, AT_EMPTY_PATH) != 0) {
        return Fail(ErrnoError("jail: chown " + path, errno));
      }
    }
    return made;
  }

  ~JailResources() { Release(); }

  void Release() {
    for (int fd : owned_) {
      if (::fchownat(fd, "", 0, 0, AT_EMPTY_PATH) != 0) {
        Log()->warn("{}: giving a file back to root: {}", vm_id_, std::strerror(errno));
      }
      ::close(fd);
    }
    owned_.clear();
    for (const auto& dir : cgroups_) RemoveCgroup(vm_id_, dir);
    cgroups_.clear();
  }

 private:
  explicit JailResources(std::string vm_id) : vm_id_(std::move(vm_id)) {}

  std::string vm_id_;
  std::vector<std::string> cgroups_;
  std::vector<int> owned_;
};

// A jailed QEMU. Its jail is given back as soon as its exit is seen, or
// when it is dropped (after it has been killed and reaped).
class JailedQemuProcess final : public QemuProcess {
 public:
  JailedQemuProcess(std::unique_ptr<JailSlots::Lease> slot, std::unique_ptr<JailResources> resources,
                    std::unique_ptr<ChildProcess> child)
      : slot_(std::move(slot)), resources_(std::move(resources)), child_(std::move(child)) {}
  ~JailedQemuProcess() override {
    child_.reset();
    Release();
  }

  pid_t pid() const override { return child_->pid(); }
  const std::optional<ExitStatus>& exit_status() const override { return child_->exit_status(); }
  boost::asio::awaitable<ExitStatus> WaitExit() override {
    const ExitStatus status = co_await child_->WaitExit();
    Release();
    co_return status;
  }
  void Kill(int signal) override { child_->Kill(signal); }

 private:
  void Release() {
    resources_.reset();
    slot_.reset();  // last: the uid is free only once nothing of it is left
  }

  std::unique_ptr<JailSlots::Lease> slot_;
  std::unique_ptr<JailResources> resources_;
  std::unique_ptr<ChildProcess> child_;
};

// `ip netns exec` (how tests and some units run the daemon) gives it a
// fresh /sys without the cgroup mounts. The hierarchies still exist; mount
// them again under `dir`, in the daemon's own mount namespace: v2 when it
// has the controllers, else the v1 ones (a v1 mount with a hierarchy's
// exact options attaches to that hierarchy).
Result<CgroupHost> MountCgroups(const std::string& dir, const Error& why) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (::mount("cgroup2", dir.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) {
    auto v2 = DetectCgroups(dir);
    if (v2) return v2;
    ::umount2(dir.c_str(), MNT_DETACH);
  }
  for (const char* controller : kControllers) {
    const std::string hierarchy = dir + "/" + controller;
    fs::create_directories(hierarchy, ec);
    if (fs::exists(hierarchy + "/cgroup.procs")) continue;
    if (::mount("cgroup", hierarchy.c_str(), "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, controller) != 0) {
      return Fail(why);
    }
  }
  Log()->info("cgroups not under /sys/fs/cgroup: mounted the v1 hierarchies at {}", dir);
  return DetectCgroups(dir);
}

}  // namespace

Result<CgroupHost> DetectCgroups(const std::string& sys_fs_cgroup) {
  CgroupHost host;
  std::ifstream controllers(sys_fs_cgroup + "/cgroup.controllers");
  if (controllers) {
    std::stringstream text;
    text << controllers.rdbuf();
    const std::string have = " " + text.str() + " ";
    for (const char* controller : kControllers) {
      if (have.find(std::string(" ") + controller) == std::string::npos) {
        return Fail(ErrorCode::kUnavailable, std::string("jail: cgroup v2 at ") + sys_fs_cgroup + " lacks the " +
                                                 controller + " controller (or set jail: off)");
      }
    }
    host.version = CgroupVersion::kV2;
    host.v2_root = sys_fs_cgroup;
    return host;
  }
  host.version = CgroupVersion::kV1;
  for (const char* controller : kControllers) {
    const std::string root = sys_fs_cgroup + "/" + controller;
    if (!fs::exists(root + "/cgroup.procs")) {
      return Fail(ErrorCode::kUnavailable, "jail: no cgroup v2 at " + sys_fs_cgroup + " and no v1 " + controller +
                                               " hierarchy at " + root + " (or set jail: off)");
    }
    host.v1_roots[controller] = root;
  }
  return host;
}

Result<std::unique_ptr<JailSlots::Lease>> JailSlots::Acquire() {
  for (std::size_t slot = 0; slot < taken_.size(); ++slot) {
    if (taken_[slot]) continue;
    taken_[slot] = true;
    return std::make_unique<Lease>(shared_from_this(), static_cast<int>(slot));
  }
  return Fail(ErrorCode::kUnavailable,
              "jail: all " + std::to_string(taken_.size()) + " uid slots are in use (raise jail.slots)");
}

Result<std::unique_ptr<JailSlots::Lease>> JailSlots::Take(int slot) {
  if (slot < 0 || static_cast<std::size_t>(slot) >= taken_.size() || taken_[slot]) {
    return Fail(ErrorCode::kConflict, "jail: uid slot " + std::to_string(slot) + " is not free");
  }
  taken_[slot] = true;
  return std::make_unique<Lease>(shared_from_this(), slot);
}

Result<std::unique_ptr<JailSlots::Lease>> Jailer::AdoptSlot(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    long uid = -1;
    fields >> uid;
    return slots_->Take(static_cast<int>(uid - static_cast<long>(config_.uid_base)));
  }
  return Fail(ErrorCode::kNotFound, "jail: no uid for pid " + std::to_string(pid));
}

Jailer::Jailer(JailConfig config, JailHost host)
    : config_(std::move(config)), host_(std::move(host)), slots_(std::make_shared<JailSlots>(config_.slots)) {}

Result<std::unique_ptr<Jailer>> Jailer::Create(const JailConfig& config, const std::string& qemu_binary,
                                               const std::string& run_dir) {
  JailHost host;
  fs::path program = qemu_binary;
  if (program.filename() == program) {
    std::stringstream path(::getenv("PATH") ? ::getenv("PATH") : "/usr/bin:/bin");
    std::string dir;
    program.clear();
    while (std::getline(path, dir, ':')) {
      if (!dir.empty() && ::access((fs::path(dir) / qemu_binary).c_str(), X_OK) == 0) {
        program = fs::path(dir) / qemu_binary;
        break;
      }
    }
    if (program.empty()) return Fail(ErrorCode::kNotFound, "jail: " + qemu_binary + " not found in PATH");
  }
  std::error_code ec;
  host.qemu_path = fs::canonical(program, ec).string();
  if (ec) return Fail(ErrorCode::kNotFound, "jail: " + program.string() + ": " + ec.message());

  auto cgroups = DetectCgroups();
  if (!cgroups) cgroups = MountCgroups(run_dir + "/cgroup", cgroups.error());
  if (!cgroups) return Fail(cgroups.error());
  host.cgroups = std::move(*cgroups);

  for (const char* path : kSystemPaths) {
    const auto status = fs::symlink_status(path, ec);
    if (ec || !fs::exists(status)) continue;
    if (fs::is_symlink(status)) {
      host.system_paths.push_back({path, fs::read_symlink(path, ec).string()});
    } else if (fs::is_directory(status)) {
      host.system_paths.push_back({path, ""});
    }
  }

  host.root_dir = run_dir + "/jail-root";
  fs::create_directories(host.root_dir, ec);
  if (ec) return Fail(ErrorCode::kInternal, "jail: create " + host.root_dir + ": " + ec.message());
  return std::unique_ptr<Jailer>(new Jailer(config, std::move(host)));
}

void Jailer::RemoveLeftovers(const std::string& vm_id, const std::vector<std::string>& writable_dirs) const {
  for (const auto& dir : JailCgroupDirs(vm_id, config_, host_.cgroups)) RemoveCgroup(vm_id, dir);
  const uid_t first = config_.uid_base;
  const uid_t last = first + static_cast<uid_t>(config_.slots);
  for (const auto& top : writable_dirs) {
    std::error_code ec;
    if (!fs::exists(top, ec)) continue;
    auto give_back = [&](const fs::path& path) {
      struct stat st {};
      if (::lstat(path.c_str(), &st) == 0 && st.st_uid >= first && st.st_uid < last &&
          ::lchown(path.c_str(), 0, 0) != 0) {
        Log()->warn("{}: giving {} back to root: {}", vm_id, path.string(), std::strerror(errno));
      }
    };
    give_back(top);
    for (auto it = fs::recursive_directory_iterator(top, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      give_back(it->path());
    }
  }
}

namespace {

// A virtiofsd with its cgroups and the uid slot its guest root is squashed
// to: both are given back only once the process is gone.
class JailedVirtiofsd final : public VirtiofsdProcess {
 public:
  JailedVirtiofsd(std::unique_ptr<JailSlots::Lease> slot, std::unique_ptr<JailResources> resources,
                  std::unique_ptr<VirtiofsdProcess> process)
      : slot_(std::move(slot)), resources_(std::move(resources)), process_(std::move(process)) {}
  pid_t pid() const override { return process_->pid(); }

 private:
  // Destroyed in reverse: the process (killed and reaped), its cgroups, then the slot.
  std::unique_ptr<JailSlots::Lease> slot_;
  std::unique_ptr<JailResources> resources_;
  std::unique_ptr<VirtiofsdProcess> process_;
};

}  // namespace

Result<StartedVirtiofsd> Jailer::LaunchVirtiofsd(boost::asio::any_io_executor executor,
                                                 const VirtiofsdLaunch& launch) {
  auto slot = slots_->Acquire();
  if (!slot) return Fail(slot.error());
  const UserIds squash{.uid = static_cast<std::uint32_t>(config_.uid_base + (*slot)->slot()),
                       .gid = static_cast<std::uint32_t>(config_.gid_base + (*slot)->slot())};
  auto ids = MountIdMaps(launch.owner, launch.guest_default, squash);
  if (!ids) return Fail(ids.error());
  JailPlan plan{.vm_id = launch.vm_id};
  plan.cgroups = VirtiofsdCgroupPlan(launch.vm_id, launch.index, config_, host_.cgroups);
  auto resources = JailResources::Create(plan);
  if (!resources) return Fail(resources.error());
  const VirtiofsdJail jail{.ids = std::move(*ids), .cgroup_procs = plan.cgroups.join};
  auto started = agentvm::LaunchVirtiofsd(std::move(executor), launch, jail);
  if (!started) return Fail(started.error());
  started->process =
      std::make_unique<JailedVirtiofsd>(std::move(*slot), std::move(*resources), std::move(started->process));
  return started;
}

Result<std::unique_ptr<QemuProcess>> Jailer::Launch(boost::asio::any_io_executor executor, QemuLaunch launch) {
  auto slot = slots_->Acquire();
  if (!slot) return Fail(slot.error());
  const JailPlan plan = MakeJailPlan(launch, config_, host_, (*slot)->slot());
  auto resources = JailResources::Create(plan);
  if (!resources) return Fail(resources.error());
  JailedSpawn spawn{.argv = std::move(launch.argv),
                    .stderr_path = std::move(launch.stderr_path),
                    .pass_fds = std::move(launch.pass_fds)};
  auto spawned = SpawnJailed(plan, spawn);
  if (!spawned) return Fail(spawned.error());
  auto child = ChildProcess::Adopt(std::move(executor), spawned->pid, spawned->pidfd);
  Log()->info("{}: qemu pid {} jailed as uid {}, memory limit {} MiB, {} mounts", plan.vm_id, spawned->pid,
              plan.uid, plan.memory_limit_bytes >> 20, plan.mounts.size());
  std::unique_ptr<QemuProcess> process =
      std::make_unique<JailedQemuProcess>(std::move(*slot), std::move(*resources), std::move(child));
  return process;
}

std::vector<std::string> JailOffWarnings() {
  return {
      "jail: off -- QEMU runs as root with every capability, for debugging only:",
      "jail: off -- no per-VM uid/gid, no capability drop, no no_new_privs",
      "jail: off -- no mount namespace: QEMU sees the whole host file system",
      "jail: off -- no PID or IPC namespace, no cgroup (memory, pids, cpu) and no rlimits",
      "jail: off -- QEMU's own -sandbox seccomp filter stays on",
      "jail: off -- virtiofsd runs as root without a user namespace: mounts keep the guest's uids, guest root "
      "writes as root (a read-write source must still be nosuid)",
  };
}

}  // namespace agentvm
