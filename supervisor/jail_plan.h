// JailPlan: how one QEMU is confined, as plain data computed by a pure
// function (MakeJailPlan) from what the launch needs (QemuLaunch), the
// daemon's jail config and what the host offers. jail_spawn.cc carries it
// out; unit tests read it. Modelled on Firecracker's jailer (docs/security.md):
// a per-VM uid/gid, a cgroup per VM, a mount namespace whose root is a fresh
// tmpfs holding bind mounts of exactly the launch's files, its own PID and
// IPC namespaces, rlimits, no capabilities, no_new_privs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "supervisor/config.h"

namespace agentvm {

struct QemuLaunch;

enum class CgroupVersion { kV1, kV2 };

// Where the host's cgroup controllers are mounted.
struct CgroupHost {
  CgroupVersion version = CgroupVersion::kV2;
  std::string v2_root;                        // v2: the unified hierarchy
  std::map<std::string, std::string> v1_roots;  // v1: "memory" -> /sys/fs/cgroup/memory
};

// What the host offers a jail, looked up once by the daemon.
struct JailHost {
  std::string qemu_path;  // the QEMU binary, resolved to an absolute path
  std::string root_dir;   // an empty directory the jail's tmpfs root is mounted on
  CgroupHost cgroups;
  // Top-level system paths QEMU's binary and shared libraries need: a
  // directory is bind-mounted read-only, a symlink (usrmerge: /lib ->
  // usr/lib) is recreated with `link_target`.
  struct SystemPath {
    std::string path;
    std::string link_target;  // empty: a directory
  };
  std::vector<SystemPath> system_paths;
};

struct BindMount {
  std::string source;  // on the host
  std::string target;  // inside the jail (the same path, so argv needs no rewriting)
  bool directory = false;
  bool read_only = true;
  bool device = false;  // a device node: the mount keeps device access
};

struct CgroupWrite {
  std::string file;  // absolute path of a cgroup control file
  std::string value;
};

struct CgroupPlan {
  std::vector<std::string> create;   // directories to make, parents first
  std::vector<CgroupWrite> writes;   // in order, after `create`
  std::vector<std::string> join;     // cgroup.procs files QEMU enters before exec
  std::vector<std::string> remove;   // removed after QEMU is gone, children first
};

struct JailRlimit {
  int resource = 0;  // RLIMIT_*
  std::uint64_t value = 0;
};

struct JailPlan {
  std::string vm_id;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string program;  // absolute path of QEMU, the same inside the jail
  std::string root_dir;
  std::vector<std::string> dirs;  // made in the jail's tmpfs root, parents first
  std::vector<BindMount> mounts;  // in order: a mount's target's parents exist by then
  std::vector<JailHost::SystemPath> symlinks;
  // A proc of the jail's own PID namespace at /proc, showing nothing but
  // its processes (subset=pid): for QEMU to open an inherited fd by path.
  bool mount_proc = false;
  // Files and directories QEMU writes: owned by uid/gid while it runs, given
  // back to root when it is gone.
  std::vector<std::string> owned_paths;
  CgroupPlan cgroups;
  std::vector<JailRlimit> rlimits;
  std::uint64_t memory_limit_bytes = 0;
};

// The jail of the QEMU in `launch`, run in uid/gid slot `slot`.
JailPlan MakeJailPlan(const QemuLaunch& launch, const JailConfig& config, const JailHost& host, int slot);

// The cgroup of the virtiofsd of VM `vm_id`'s mount `index`: a leaf
// beside QEMU's ("<vm_id>.fs<index>"), with virtiofsd_memory_mib of memory
// (kernel memory included, where the host's memory controller counts it:
// the files a guest makes virtiofsd hold open are bounded by it).
CgroupPlan VirtiofsdCgroupPlan(const std::string& vm_id, int index, const JailConfig& config, const CgroupHost& host);

// The cgroup directories the jails of VM `vm_id` have (its QEMU's and its
// virtiofsds', one per v1 controller or one v2 leaf each): what a restarted
// daemon removes for a VM whose QEMU it found left over.
std::vector<std::string> JailCgroupDirs(const std::string& vm_id, const JailConfig& config, const CgroupHost& host);

// The memory a QEMU of `memory_mib` guest RAM may use in all: guest RAM,
// QEMU's own overhead and, under TCG, the translated-code cache.
std::uint64_t JailMemoryLimit(int memory_mib, bool tcg, const JailConfig& config);

}  // namespace agentvm
