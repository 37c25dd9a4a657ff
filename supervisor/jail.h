// Jailer: launches every QEMU of the daemon in its own jail (jail_plan.h):
// it owns the uid/gid slots, detects what the host offers once, and hands
// out QemuProcesses that carry their jail's resources (cgroups, the
// ownership of the VM's writable files, the slot) and give them back the
// moment QEMU is gone.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/error.h"
#include "supervisor/config.h"
#include "supervisor/jail_plan.h"
#include "supervisor/virtiofsd.h"

namespace agentvm {

struct QemuLaunch;
class QemuProcess;

// Where the cgroup controllers QEMU's jail needs are: v2 when
// `sys_fs_cgroup` is itself the unified hierarchy, else the v1 memory, pids
// and cpu hierarchies under it (a hybrid host's empty unified tree is not used).
Result<CgroupHost> DetectCgroups(const std::string& sys_fs_cgroup = "/sys/fs/cgroup");

// Which uid/gid slots are taken. A slot is free again when its lease ends.
class JailSlots : public std::enable_shared_from_this<JailSlots> {
 public:
  class Lease {
   public:
    Lease(std::shared_ptr<JailSlots> slots, int slot) : slots_(std::move(slots)), slot_(slot) {}
    ~Lease() { slots_->taken_[slot_] = false; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    int slot() const { return slot_; }

   private:
    std::shared_ptr<JailSlots> slots_;
    int slot_;
  };

  explicit JailSlots(int count) : taken_(count, false) {}
  // The lowest free slot; an error when all are taken.
  Result<std::unique_ptr<Lease>> Acquire();
  // That slot (an adopted QEMU's); an error when it is out of range or taken.
  Result<std::unique_ptr<Lease>> Take(int slot);

 private:
  std::vector<bool> taken_;
};

class Jailer {
 public:
  // Looks up QEMU, the cgroup controllers and the system paths QEMU needs;
  // `run_dir` gets the (empty) directory jails mount their roots on.
  static Result<std::unique_ptr<Jailer>> Create(const JailConfig& config, const std::string& qemu_binary,
                                                const std::string& run_dir);

  Result<std::unique_ptr<QemuProcess>> Launch(boost::asio::any_io_executor executor, QemuLaunch launch);

  // Starts a mount's virtiofsd in a user namespace (virtiofsd.h) whose
  // guest root is squashed to a uid/gid slot of its own, held until it ends.
  Result<StartedVirtiofsd> LaunchVirtiofsd(boost::asio::any_io_executor executor, const VirtiofsdLaunch& launch);

  // Gives back what the jail of VM `vm_id` held when its daemon died with
  // it (its QEMU already killed): its cgroups are removed and every file
  // under `writable_dirs` owned by a jail uid goes back to root.
  void RemoveLeftovers(const std::string& vm_id, const std::vector<std::string>& writable_dirs) const;

  // The uid slot of a jailed QEMU an earlier daemon launched (found from the
  // uid `pid` runs as), taken until the lease goes; what else its jail holds
  // is given back by RemoveLeftovers once that QEMU is gone.
  Result<std::unique_ptr<JailSlots::Lease>> AdoptSlot(pid_t pid);

  const JailHost& host() const { return host_; }

 private:
  Jailer(JailConfig config, JailHost host);

  JailConfig config_;
  JailHost host_;
  std::shared_ptr<JailSlots> slots_;
};

// The lines `jail: off` logs at start, one per protection it turns off.
std::vector<std::string> JailOffWarnings();

}  // namespace agentvm
