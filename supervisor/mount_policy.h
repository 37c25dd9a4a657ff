// Which host directories a VM may mount (docs/workspaces.md): canonical
// sources, confined to the operator's mount_roots, never a system directory
// or the daemon's own; and how a VM's mounts are kept in its record.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "supervisor/vm_types.h"

namespace agentvm {

// statvfs's ST_NOSUID for the mount holding `path`; false when it fails.
bool IsMountedNosuid(const std::string& path);

struct MountPolicy {
  // mount_roots: a source must be one of these or under one. Empty: mounts
  // are refused, with an error saying how to allow them.
  std::vector<std::string> roots;
  // The daemon's state, run and image dirs: refused, as is any source that
  // contains one of them or lies in one.
  std::vector<std::string> daemon_dirs;
  // Whether the file system holding `path` is mounted nosuid on the host: a
  // read-write source must be, since virtiofsd (as root) stores the mode a
  // guest's root sets, setuid bits included (docs/workspaces.md). A seam for
  // unit tests, which cannot mount.
  bool (*mounted_nosuid)(const std::string& path) = IsMountedNosuid;
};

// `mounts` (valid) with each source resolved to its canonical path
// (symlinks followed, so a link cannot lead out of a root): an existing
// directory under a root, not "/" and not in /etc, /proc, /sys, /dev or
// /boot. kInvalidArgument names the mount and the reason.
// Checks ValidateMounts (vm_mounts.h) first.
Result<std::vector<VmMount>> ResolveMounts(const std::vector<VmMount>& mounts, const MountPolicy& policy);

// VmRecord::mounts: JSON, "" for none; unreadable entries are skipped.
std::string MountsToRecord(const std::vector<VmMount>& mounts);
std::vector<VmMount> MountsFromRecord(const std::string& record);

}  // namespace agentvm
