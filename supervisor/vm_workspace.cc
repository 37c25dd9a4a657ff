// The Vm's mounts (docs/workspaces.md): a virtiofsd per host directory,
// started before QEMU and handed to it as a vhost-user-fs device, and the
// guest's mounts of them, made through the agent before the VM is running,
// so no exec ever sees the mount point empty.
#include "common/logging.h"
#include "supervisor/guest_channel.h"
#include "supervisor/vm.h"

namespace agentvm {
namespace {

// The tag of mount `i`'s device, which the guest mounts by.
std::string FsTag(std::size_t i) { return "agentvm-fs" + std::to_string(i); }

}  // namespace

Result<std::vector<UniqueFd>> Vm::StartVirtiofsds(QemuLaunchSpec& spec) {
  std::vector<UniqueFd> qemu_ends;
  virtiofsds_.clear();
  for (std::size_t i = 0; i < spec_.mounts.size(); ++i) {
    const VmMount& mount = spec_.mounts[i];
    VirtiofsdLaunch launch{
        .vm_id = spec_.id,
        .index = static_cast<int>(i),
        .binary = context_.virtiofsd_binary,
        .source = mount.source,
        .readonly = mount.readonly,
        .cache = context_.virtiofs_cache,
        .socket_path = (spec_.paths.runtime_dir / ("fs" + std::to_string(i) + ".sock")).string(),
        .log_path = (spec_.paths.runtime_dir / "virtiofsd.log").string(),
        .owner = spec_.mount_owner.value_or(UserIds{}),
        // Supervisor::Create refuses mounts for an image without them.
        .guest_default = {.uid = spec_.image.default_uid.value_or(0), .gid = spec_.image.default_gid.value_or(0)},
    };
    auto started = context_.host->LaunchVirtiofsd(std::move(launch));
    if (!started) {
      virtiofsds_.clear();
      return Fail(started.error().Wrap("mount " + mount.source + " at " + mount.target));
    }
    spec.fs_devices.push_back({.tag = FsTag(i), .fd = started->qemu_end.get()});
    qemu_ends.push_back(std::move(started->qemu_end));
    virtiofsds_.push_back(std::move(started->process));
  }
  // virtiofsd maps guest RAM: it must be shared (memory templates are
  // private, so a VM with mounts always cold-boots).
  if (!spec_.mounts.empty()) spec.memory = GuestMemory::kSharedMemfd;
  return qemu_ends;
}

boost::asio::awaitable<Result<void>> Vm::MountInGuest(std::chrono::milliseconds timeout) {
  GuestIdentity identity;
  for (std::size_t i = 0; i < spec_.mounts.size(); ++i) {
    identity.mounts.push_back({.tag = FsTag(i),
                               .target = spec_.mounts[i].target,
                               .readonly = spec_.mounts[i].readonly});
  }
  auto mounted = co_await channel_->Configure(std::move(identity), timeout);
  if (!mounted) co_return Fail(mounted.error().Wrap("mount the shared directories in the guest"));
  co_return Result<void>{};
}

}  // namespace agentvm
