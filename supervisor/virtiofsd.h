// Virtiofsd: QEMU 7.2's own C virtiofsd, one per mount per VM
// (docs/workspaces.md). The daemon starts it in a mount namespace of its own
// where the shared directory is bind-mounted nosuid, nodev (and read-only
// for a read-only mount: 7.2 has no read-only option of its own), and, when
// the launch has ids to map, in a user namespace of its own: it is root
// there, with capabilities over nothing but the files of the host ids it
// maps (the mount's owner and a squash id), so the guest's default user
// creates files as the owner and nothing it does acts as the host's root.
// virtiofsd then adds its own sandbox (namespaces, pivot_root into the
// directory, seccomp) and runs without CAP_MKNOD, so a guest cannot make
// device nodes on the host. It dies with the daemon (PR_SET_PDEATHSIG) and
// ends when QEMU hangs up.
//
// QEMU, jailed, cannot reach a socket of root's: the daemon connects to
// virtiofsd's listening socket itself and hands QEMU the connected end as an
// inherited fd (`-chardev socket,fd=N`).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "supervisor/vm_types.h"

namespace agentvm {

// One line of a user namespace's uid_map or gid_map, for one id.
struct IdMapping {
  std::uint32_t inside = 0;
  std::uint32_t outside = 0;
  bool operator==(const IdMapping&) const = default;
};

// The user namespace a virtiofsd runs in: inside ids are the guest's (what
// virtiofsd sees in a request), outside ids the host's.
struct VirtiofsdIdMaps {
  std::vector<IdMapping> uids;
  std::vector<IdMapping> gids;
};

// The ids of a mount (docs/workspaces.md, "Ownership"): the guest's default
// user is the host's `owner`; the guest's root is `squash` (a uid of the
// jail's range, never the host's root), unless root is the default user.
// No other guest id is mapped: virtiofsd cannot create files as one
// (EINVAL), and host files of unmapped owners show as nobody in the guest.
// An error when `owner` is `squash` (a caller of the jail's range).
Result<VirtiofsdIdMaps> MountIdMaps(UserIds owner, UserIds guest_default, UserIds squash);

// "inside outside 1" lines, as /proc/PID/uid_map takes them.
std::string IdMapText(const std::vector<IdMapping>& map);

// How the jail confines a virtiofsd beyond its own sandbox (jail.h).
struct VirtiofsdJail {
  VirtiofsdIdMaps ids;
  // cgroup.procs files it is put in before it runs virtiofsd.
  std::vector<std::string> cgroup_procs;
};

struct VirtiofsdLaunch {
  std::string vm_id;
  int index = 0;  // which of the VM's mounts
  std::string binary = "/usr/lib/qemu/virtiofsd";
  std::string source;  // canonical host directory (mount_policy.h)
  bool readonly = false;
  std::string cache = "auto";  // -o cache= (auto, always, none)
  // A path in the VM's runtime dir: the listening socket's, removed once
  // connected, and virtiofsd's argv[0], so a later daemon finds a leftover
  // one by it (KillLeftoverVirtiofsds).
  std::string socket_path;
  std::string log_path;  // virtiofsd's stderr, appended to
  // Who owns what the guest's default user creates (the API caller, or the
  // operator's mount_owner), and who that user is in the guest.
  UserIds owner;
  UserIds guest_default;
};

// One virtiofsd. Destroying it kills and reaps it.
class VirtiofsdProcess {
 public:
  virtual ~VirtiofsdProcess() = default;
  virtual pid_t pid() const = 0;
};

struct StartedVirtiofsd {
  std::unique_ptr<VirtiofsdProcess> process;
  UniqueFd qemu_end;  // connected to virtiofsd: QEMU's vhost-user chardev
};

// The argv virtiofsd runs with (argv[0] is launch.socket_path).
std::vector<std::string> VirtiofsdArgv(const VirtiofsdLaunch& launch);

// Starts virtiofsd in `jail`: a user namespace of its ids (MountIdMaps) and
// its cgroups; without one (`jail: off`), as the host's root.
Result<StartedVirtiofsd> LaunchVirtiofsd(boost::asio::any_io_executor executor, const VirtiofsdLaunch& launch,
                                         const std::optional<VirtiofsdJail>& jail);

// Kills every virtiofsd an earlier daemon started for a VM under
// `run_vms_dir` (<run_dir>/vms/).
void KillLeftoverVirtiofsds(const std::string& run_vms_dir);

}  // namespace agentvm
