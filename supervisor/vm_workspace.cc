// The Vm's mounts (docs/workspaces.md): a virtiofsd per host directory,
// started before QEMU and handed to it as a vhost-user-fs device (on the
// command line for a cold boot, hot-plugged over QMP after `cont` for a
// clone of a golden snapshot, whose state cannot hold one), and the guest's
// mounts of them, made through the agent before the VM is running, so no
// exec ever sees the mount point empty.
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/deadline.h"
#include "common/logging.h"
#include "qmp/qmp_client.h"
#include "supervisor/guest_channel.h"
#include "supervisor/vm.h"

namespace agentvm {
namespace {

using std::chrono::milliseconds;

// How often, and how long at most, a clone's mount is tried again while the
// guest probes the hot-plugged device (tens of ms under TCG).
constexpr milliseconds kMountRetry{20};
constexpr milliseconds kMountWaitLimit{10000};

// The tag of mount `i`'s device, which the guest mounts by.
std::string FsTag(std::size_t i) { return "agentvm-fs" + std::to_string(i); }
// QEMU's names for mount `i`'s passed fd, chardev and device.
std::string FsName(std::size_t i) { return "fs" + std::to_string(i); }

}  // namespace

Result<std::vector<UniqueFd>> Vm::StartVirtiofsds(QemuLaunchSpec& spec, bool hotplug) {
  std::vector<UniqueFd> qemu_ends;
  virtiofsds_.clear();
  fs_plug_ends_.clear();
  for (std::size_t i = 0; i < spec_.mounts.size(); ++i) {
    const VmMount& mount = spec_.mounts[i];
    VirtiofsdLaunch launch{
        .vm_id = spec_.id,
        .index = static_cast<int>(i),
        .binary = context_.virtiofsd_binary,
        .source = mount.source,
        .readonly = mount.readonly,
        .cache = context_.virtiofs_cache,
        .socket_path = (spec_.paths.runtime_dir / (FsName(i) + ".sock")).string(),
        .log_path = (spec_.paths.runtime_dir / "virtiofsd.log").string(),
        .owner = spec_.mount_owner.value_or(UserIds{}),
        // Supervisor::Create refuses mounts for an image without them.
        .guest_default = {.uid = spec_.image.default_uid.value_or(0), .gid = spec_.image.default_gid.value_or(0)},
    };
    auto started = context_.host->LaunchVirtiofsd(std::move(launch));
    if (!started) {
      virtiofsds_.clear();
      fs_plug_ends_.clear();
      return Fail(started.error().Wrap("mount " + mount.source + " at " + mount.target));
    }
    virtiofsds_.push_back(std::move(started->process));
    if (hotplug) {
      fs_plug_ends_.push_back(std::move(started->qemu_end));
      continue;
    }
    spec.fs_devices.push_back({.tag = FsTag(i), .fd = started->qemu_end.get()});
    qemu_ends.push_back(std::move(started->qemu_end));
  }
  // virtiofsd maps guest RAM: it must be shared. A clone's is already (a
  // copy of its template: LaunchSpecFor).
  if (!spec_.mounts.empty() && !hotplug) spec.memory = GuestMemory::kSharedMemfd;
  return qemu_ends;
}

boost::asio::awaitable<Result<void>> Vm::HotplugMounts(milliseconds timeout) {
  const Deadline deadline(timeout);
  std::vector<UniqueFd> ends = std::move(fs_plug_ends_);
  if (ends.size() != spec_.mounts.size() || ends.size() > kMaxMounts) {
    co_return Fail(ErrorCode::kInternal, "hot-plug: " + std::to_string(ends.size()) + " virtiofsd sockets for " +
                                             std::to_string(spec_.mounts.size()) + " mounts");
  }
  for (std::size_t i = 0; i < ends.size(); ++i) {
    const std::string name = FsName(i);
    // QEMU runs jailed and cannot open the socket: it gets the connected end.
    nlohmann::json getfd = {{"fdname", name}};
    auto passed = co_await qmp_->ExecuteWithFd("getfd", std::move(getfd), ends[i].get(), deadline.Remaining());
    if (!passed) co_return Fail(passed.error().ToError().Wrap("hot-plug " + name + ": getfd"));
    ends[i].reset();
    nlohmann::json chardev = {
        {"id", name},
        {"backend",
         {{"type", "socket"}, {"data", {{"addr", {{"type", "fd"}, {"data", {{"str", name}}}}}, {"server", false}}}}}};
    auto added = co_await qmp_->Execute("chardev-add", std::move(chardev), deadline.Remaining());
    if (!added) co_return Fail(added.error().ToError().Wrap("hot-plug " + name + ": chardev-add"));
    // device_add talks vhost-user to virtiofsd before it returns: a dead
    // virtiofsd fails it here.
    nlohmann::json device = {{"driver", "vhost-user-fs-pci"}, {"id", name},       {"chardev", name},
                             {"tag", FsTag(i)},                {"bus", HotplugPortId(i)}};
    auto plugged = co_await qmp_->Execute("device_add", std::move(device), deadline.Remaining());
    if (!plugged) co_return Fail(plugged.error().ToError().Wrap("hot-plug " + name + ": device_add"));
  }
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Vm::MountInGuest(milliseconds timeout, bool retry) {
  const Deadline deadline(timeout);
  std::vector<protocol::GuestMount> mounts;
  for (std::size_t i = 0; i < spec_.mounts.size(); ++i) {
    mounts.push_back({.tag = FsTag(i), .target = spec_.mounts[i].target, .readonly = spec_.mounts[i].readonly});
  }
  if (!retry) {
    GuestIdentity identity;
    identity.mounts = std::move(mounts);
    auto mounted = co_await channel_->Configure(std::move(identity), timeout);
    if (!mounted) co_return Fail(mounted.error().Wrap("mount the shared directories in the guest"));
    co_return Result<void>{};
  }
  const Deadline wait_limit(std::min(timeout, kMountWaitLimit));
  // One at a time: a mount that failed because its tag is not there yet
  // (the guest's kernel says EINVAL) is tried again, and one made is not.
  for (auto& mount : mounts) {
    for (;;) {
      GuestIdentity identity;
      identity.mounts.push_back(mount);
      auto mounted = co_await channel_->Configure(std::move(identity), deadline.Remaining());
      if (mounted) break;
      if (!qemu_running() || stop_reason_ || wait_limit.Remaining() <= kMountRetry) {
        co_return Fail(mounted.error().Wrap("mount the hot-plugged shared directories in the guest"));
      }
      boost::asio::steady_timer pause(context_.executor, kMountRetry);
      co_await pause.async_wait(boost::asio::use_awaitable);
    }
  }
  co_return Result<void>{};
}

}  // namespace agentvm
