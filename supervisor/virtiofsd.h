// Virtiofsd: QEMU 7.2's own C virtiofsd, one per mount per VM
// (docs/workspaces.md). The daemon starts it as root (it must create files
// as the guest's uids) in a mount namespace of its own where the shared
// directory is bind-mounted nosuid, nodev (and read-only for a read-only
// mount: 7.2 has no read-only option of its own); virtiofsd then adds its
// own sandbox (namespaces, pivot_root into the directory, seccomp) and runs
// without CAP_MKNOD, so a guest cannot make device nodes on the host. It
// dies with the daemon (PR_SET_PDEATHSIG) and ends when QEMU hangs up.
//
// QEMU, jailed, cannot reach a socket of root's: the daemon connects to
// virtiofsd's listening socket itself and hands QEMU the connected end as an
// inherited fd (`-chardev socket,fd=N`).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "common/error.h"
#include "common/unique_fd.h"

namespace agentvm {

struct VirtiofsdLaunch {
  std::string vm_id;
  std::string binary = "/usr/lib/qemu/virtiofsd";
  std::string source;  // canonical host directory (mount_policy.h)
  bool readonly = false;
  // A path in the VM's runtime dir: the listening socket's, removed once
  // connected, and virtiofsd's argv[0], so a later daemon finds a leftover
  // one by it (KillLeftoverVirtiofsds).
  std::string socket_path;
  std::string log_path;  // virtiofsd's stderr, appended to
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

Result<StartedVirtiofsd> LaunchVirtiofsd(boost::asio::any_io_executor executor, const VirtiofsdLaunch& launch);

// Kills every virtiofsd an earlier daemon started for a VM under
// `run_vms_dir` (<run_dir>/vms/).
void KillLeftoverVirtiofsds(const std::string& run_vms_dir);

}  // namespace agentvm
