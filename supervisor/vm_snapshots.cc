// The Vm's snapshot operations: saving its state for a golden snapshot, and
// named snapshots of a running VM (docs/snapshots.md). The state machine and
// boot are in vm.cc.
#include <utility>

#include "common/logging.h"
#include "qmp/qmp_client.h"
#include "supervisor/guest_channel.h"
#include "supervisor/names.h"
#include "qmp/migration.h"
#include "qmp/named_snapshots.h"
#include "supervisor/qemu_command_line.h"
#include "supervisor/vm.h"

namespace agentvm {
namespace {

using std::chrono::milliseconds;

// Saving 256 MiB takes well under a second; a big guest on a slow disk may
// take a minute. Past that something is wrong.
constexpr milliseconds kSaveTimeout{120000};
constexpr milliseconds kSnapshotTimeout{120000};
constexpr milliseconds kQuitTimeout{10000};
constexpr milliseconds kAgentAfterLoadTimeout{10000};
// The writable top of every VM's disk chain (qemu_command_line.cc).

std::shared_ptr<spdlog::logger> Log() { return Logger("vm"); }

// Clears a flag when the operation that set it ends, however it ends.
class FlagScope {
 public:
  explicit FlagScope(bool& flag) : flag_(flag) { flag_ = true; }
  ~FlagScope() { flag_ = false; }
  FlagScope(const FlagScope&) = delete;
  FlagScope& operator=(const FlagScope&) = delete;

 private:
  bool& flag_;
};

SnapshotInfo ToSnapshotInfo(const qmp::NamedSnapshot& snapshot) {
  return SnapshotInfo{snapshot.name, snapshot.vm_state_bytes, snapshot.created_at};
}

}  // namespace

boost::asio::awaitable<Result<void>> Vm::SaveStateAndEnd(int fd) {
  if (auto ok = RequireRunning(); !ok) co_return ok;
  const auto self = shared_from_this();
  stop_reason_ = "saved as a golden snapshot";
  SetState(VmState::kStopping);
  const RamInStream ram = spec_.ram_becomes_template ? RamInStream::kIgnoreShared : RamInStream::kAll;
  auto saved = co_await SaveState(*qmp_, fd, ram, kSaveTimeout);
  if (!saved) {
    co_await Kill("saving its state failed");
    co_return Fail(saved.error().Wrap("save state of " + spec_.id));
  }
  // QEMU refuses a second save, and the disk must be closed before it is
  // frozen: this QEMU's work is done.
  co_await qmp_->Execute("quit");
  co_await WaitFor([this] { return !qemu_running(); }, kQuitTimeout);
  co_await Kill(*stop_reason_);
  co_return Result<void>{};
}

Result<void> Vm::BeginSnapshotOp() {
  if (auto ok = RequireRunning(); !ok) return ok;
  if (snapshot_op_) {
    return Fail(ErrorCode::kConflict, "vm " + spec_.id + " is busy with another snapshot operation");
  }
  return {};
}

boost::asio::awaitable<Result<SnapshotInfo>> Vm::SaveSnapshot(std::string name) {
  if (!IsValidSnapshotName(name)) co_return Fail(ErrorCode::kInvalidArgument, "invalid snapshot name");
  if (!spec_.mounts.empty()) {
    co_return Fail(ErrorCode::kConflict, "vm " + spec_.id +
                                             " has mounts: QEMU 7.2 cannot save the state of a virtiofs device, "
                                             "so a VM with mounts has no named snapshots");
  }
  if (auto ok = BeginSnapshotOp(); !ok) co_return Fail(ok.error());
  const auto self = shared_from_this();
  FlagScope busy(snapshot_op_);
  Log()->info("{}: saving snapshot {}", spec_.id, name);
  if (auto saved = co_await SaveNamedSnapshot(*qmp_, name, std::string(kDiskNodeName), kSnapshotTimeout); !saved) {
    co_return Fail(saved.error().Wrap("save snapshot " + name));
  }
  auto all = co_await ListNamedSnapshots(*qmp_, std::string(kDiskNodeName));
  if (!all) co_return Fail(all.error());
  for (const qmp::NamedSnapshot& snapshot : *all) {
    if (snapshot.name == name) co_return ToSnapshotInfo(snapshot);
  }
  co_return Fail(ErrorCode::kInternal, "snapshot " + name + " was saved but is not listed");
}

boost::asio::awaitable<Result<std::vector<SnapshotInfo>>> Vm::ListSnapshots() {
  if (auto ok = RequireRunning(); !ok) co_return Fail(ok.error());
  const auto self = shared_from_this();
  auto all = co_await ListNamedSnapshots(*qmp_, std::string(kDiskNodeName));
  if (!all) co_return Fail(all.error());
  std::vector<SnapshotInfo> infos;
  for (const qmp::NamedSnapshot& snapshot : *all) infos.push_back(ToSnapshotInfo(snapshot));
  co_return infos;
}

boost::asio::awaitable<Result<void>> Vm::RestoreSnapshot(std::string name) {
  if (!IsValidSnapshotName(name)) co_return Fail(ErrorCode::kInvalidArgument, "invalid snapshot name");
  if (auto ok = BeginSnapshotOp(); !ok) co_return ok;
  const auto self = shared_from_this();
  FlagScope busy(snapshot_op_);
  Log()->info("{}: restoring snapshot {}", spec_.id, name);
  if (auto loaded = co_await LoadNamedSnapshot(*qmp_, name, std::string(kDiskNodeName), kSnapshotTimeout); !loaded) {
    co_return Fail(loaded.error().Wrap("restore snapshot " + name));
  }
  // The guest is back at the moment of the snapshot, clock included; it
  // carries on from there, so it only needs the time set.
  if (auto ready = co_await channel_->WaitReady(kAgentAfterLoadTimeout); !ready) {
    co_return Fail(ready.error().Wrap("agent after restoring snapshot " + name));
  }
  GuestIdentity now;
  now.time_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  if (auto configured = co_await channel_->Configure(std::move(now), kAgentAfterLoadTimeout); !configured) {
    co_return Fail(configured.error().Wrap("set the clock after restoring snapshot " + name));
  }
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Vm::DeleteSnapshot(std::string name) {
  if (!IsValidSnapshotName(name)) co_return Fail(ErrorCode::kInvalidArgument, "invalid snapshot name");
  if (auto ok = BeginSnapshotOp(); !ok) co_return ok;
  const auto self = shared_from_this();
  FlagScope busy(snapshot_op_);
  if (auto deleted = co_await DeleteNamedSnapshot(*qmp_, name, std::string(kDiskNodeName), kSnapshotTimeout); !deleted) {
    co_return Fail(deleted.error().Wrap("delete snapshot " + name));
  }
  co_return Result<void>{};
}

}  // namespace agentvm
