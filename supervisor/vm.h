// Vm: one virtual machine and its state machine, the only place that changes
// a VM's state. Every change of state is an arrow of this drawing, and
// kVmTransitions below is the drawing as data; SetState refuses the rest:
//
//          restore failed: cold boot
//        ┌─────────────┐
//        ▼             │
//   creating ──► starting ──► running ──► stopping ──► stopped
//      │  │         │  │        │  │                      ▲
//      │  └─────────┼──┴────────┼──┴──────── killed ──────┘
//      │            │           │
//      └────────────┴───────────┴──► failed
//
// creating: runtime dir and overlay being made. starting: QEMU launched, QMP
// and the guest agent not answered yet (for a clone: its state being loaded
// and its identity given). running: the agent answered a ping. stopping: the
// guest asked to power off, or its state being saved; QEMU ending now, on
// its own or not, is a stop. failed: boot failed or QEMU died on its own;
// `reason` says why. killed: Kill (and Remove) end QEMU, if any, in any
// state; a VM not yet stopped or failed becomes stopped. stopped and failed
// are final.
//
// A clone whose restore fails goes back through creating to a cold boot:
// that is the one way from starting back to creating.
//
// A Vm owns its QEMU, QMP client and guest channel, all of them got through
// its VmHost (vm_host.h), the seam where tests put a fake. It lives on the
// daemon's single io_context thread and is held by shared_ptr so the
// coroutine watching QEMU's exit keeps it alive.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "protocol/exec_types.h"
#include "supervisor/boot_phases.h"
#include "supervisor/console_log.h"
#include "supervisor/golden_snapshot_store.h"
#include "supervisor/host_facts.h"
#include "supervisor/image_store.h"
#include "supervisor/state_store.h"
#include "supervisor/vm_host.h"
#include "supervisor/vm_io_stats.h"
#include "supervisor/vm_paths.h"
#include "supervisor/vm_service.h"

namespace agentvm {
namespace qmp {
class QmpClient;
}
class GuestChannel;
class NetAttachment;

// A change of state the drawing above has.
struct VmTransition {
  VmState from;
  VmState to;
};

inline constexpr VmTransition kVmTransitions[] = {
    {VmState::kCreating, VmState::kStarting}, {VmState::kCreating, VmState::kFailed},
    {VmState::kCreating, VmState::kStopped},  {VmState::kStarting, VmState::kRunning},
    {VmState::kStarting, VmState::kCreating}, {VmState::kStarting, VmState::kFailed},
    {VmState::kStarting, VmState::kStopped},  {VmState::kRunning, VmState::kStopping},
    {VmState::kRunning, VmState::kFailed},    {VmState::kRunning, VmState::kStopped},
    {VmState::kStopping, VmState::kStopped},
};

constexpr bool IsVmTransition(VmState from, VmState to) {
  for (const VmTransition& transition : kVmTransitions) {
    if (transition.from == from && transition.to == to) return true;
  }
  return false;
}

// What a Vm needs from the daemon, fixed for its life.
struct VmContext {
  boost::asio::any_io_executor executor;
  std::shared_ptr<VmHost> host;  // overlays, QEMU, its sockets
  std::string qemu_binary;
  std::string virtiofsd_binary = "/usr/lib/qemu/virtiofsd";
  std::string virtiofs_cache = "auto";  // DaemonConfig::virtiofs_cache
  Accel accel = Accel::kTcg;
  ChannelKind channel = ChannelKind::kVirtioSerial;
  std::chrono::milliseconds agent_timeout{90000};
  // For QEMU's monitor to answer after launch (it does in well under a second).
  std::chrono::milliseconds qmp_timeout{10000};
  std::chrono::milliseconds stop_grace{10000};
  // The serial console's caps (console_log.h).
  std::size_t console_ring_bytes = kConsoleRingBytes;
  std::uint64_t console_file_bytes = kConsoleFileBytes;
  // Called after every state change, to persist the record.
  std::function<void(const VmRecord&)> on_change;
};

struct VmSpec {
  std::string id;
  Image image;
  int cpus = 1;
  int memory_mib = 256;
  std::uint32_t guest_cid = 0;
  VmPaths paths;
  NetworkInfo network;  // as attached (or as recorded, for a recovered VM)
  std::string pool;     // the pool it is made for, if any
  // Host directories shared into it (sources canonical, allowed by the
  // mount policy): a virtiofsd each, mounted in the guest before it runs.
  std::vector<VmMount> mounts;
  // With mounts: whom the guest's default user writes as on the host
  // (virtiofsd.h). Not recorded: unknown for an earlier daemon's VM.
  std::optional<UserIds> mount_owner;
  // Made by the daemon for itself (a pool's ready VM, a golden snapshot's
  // VM) until Claim(): not listed, and discarded by a later daemon.
  bool unclaimed = false;
  // A golden snapshot's VM under `memory_templates: cow`: its RAM is a memfd
  // the Vm keeps, saved apart from the state (SaveStateAndEnd, TakeGuestRam).
  bool ram_becomes_template = false;
  // Root ports for hot-plugged virtiofs devices (GoldenKey::hotplug_ports):
  // a VM with mounts has them anyway, a golden VM for such VMs by this.
  bool hotplug_ports = false;
};

// Why a VM with mounts is not restored from a golden snapshot without a
// memory template (its clone's RAM must be a shared copy of one).
inline constexpr std::string_view kMountsNeedTemplate =
    "a VM with mounts restores only from a memory template (memory_templates: cow)";

class Vm : public std::enable_shared_from_this<Vm> {
 public:
  // `network` is the VM's NIC, or null for none; the Vm owns it from here
  // and lets it go (tap and firewall entries) when it is removed.
  Vm(VmContext context, VmSpec spec, std::unique_ptr<NetAttachment> network);
  // A VM known only from the state store, e.g. an earlier daemon's: no QEMU
  // runs for it; it can be listed, inspected and removed.
  Vm(VmContext context, VmSpec spec, VmState state, std::string reason, std::int64_t created_at);
  ~Vm();

  // What a record adds to a recovered VM beyond its spec and state: how it
  // booted, why its guest channel failed, when its QEMU started.
  void LoadRecordedDetails(const VmRecord& record);

  // starting → running: takes over the QEMU an earlier daemon launched for
  // this VM (vm_adopt.cc) with the network attachment rebuilt for it, and
  // reconnects QMP, the console (handed to QEMU anew over QMP) and the guest
  // channel. `note` becomes the running VM's reason. If any step fails, the
  // VM is failed with the reason and its QEMU killed.
  boost::asio::awaitable<Result<void>> Adopt(std::unique_ptr<QemuProcess> qemu,
                                             std::unique_ptr<NetAttachment> network, std::string note);

  const std::string& id() const { return spec_.id; }
  VmState state() const { return state_; }
  VmInfo Info() const;
  VmRecord Record() const;

  // creating → running, or failed with the reason in the error and in Info().
  // With `golden`: a clone of it on a fresh overlay, given its own identity
  // (address, MAC, hostname = id, clock, entropy); if that fails, a cold boot
  // instead, and restore_error() says why the restore failed.
  boost::asio::awaitable<Result<void>> Boot(std::optional<GoldenSnapshot> golden = std::nullopt);

  // Why the VM was not restored though a restore was wanted (the restore
  // Boot() tried failed, or the caller found no usable snapshot and said so
  // with set_restore_error); empty otherwise.
  const std::string& restore_error() const { return restore_error_; }
  void set_restore_error(std::string why) { restore_error_ = std::move(why); }
  // The failed restore failed at what a clone with mounts adds (copying
  // the template, starting virtiofsds, hot-plugging or mounting their
  // devices), not at the golden snapshot, which stays.
  bool restore_failed_at_mounts() const { return restore_failed_at_mounts_; }

  // The QEMU command line's spec for this VM; `golden` for a clone of it.
  QemuLaunchSpec LaunchSpecFor(const GoldenSnapshot* golden) const;

  // running → stopped: pauses the guest, writes its state to `fd`
  // (migration.h) and ends QEMU. The overlay is left for the caller to freeze.
  // The guest channel must be idle: a request in flight would be saved half done.
  // With ram_becomes_template the state holds devices only; the RAM is left
  // in the memfd TakeGuestRam() then hands over.
  boost::asio::awaitable<Result<void>> SaveStateAndEnd(int fd);
  UniqueFd TakeGuestRam() { return std::move(guest_ram_); }

  // The agent answers within `timeout` (health check; vm_guest.cc).
  boost::asio::awaitable<Result<void>> Ping(std::chrono::milliseconds timeout);

  // Its drives' I/O counters from QMP `query-blockstats`, within `timeout`
  // (for the metrics; vm_block_stats.cc); the VM must be running.
  boost::asio::awaitable<Result<std::vector<BlockIo>>> QueryBlockStats(std::chrono::milliseconds timeout);

  const Image& image() const { return spec_.image; }
  const VmPaths& paths() const { return spec_.paths; }
  const std::string& pool() const { return spec_.pool; }
  bool unclaimed() const { return spec_.unclaimed; }
  // Hands an unclaimed VM to a user (a pool's VM being taken).
  void Claim();
  // Seconds since the guest came up (its age in the pool).
  std::chrono::steady_clock::duration Age() const;

  // Named snapshots (vm_snapshots.cc): the VM must be running.
  boost::asio::awaitable<Result<SnapshotInfo>> SaveSnapshot(std::string name);
  boost::asio::awaitable<Result<std::vector<SnapshotInfo>>> ListSnapshots();
  boost::asio::awaitable<Result<void>> RestoreSnapshot(std::string name);
  boost::asio::awaitable<Result<void>> DeleteSnapshot(std::string name);

  // running → stopped: agent power-off, then ACPI, then kill.
  boost::asio::awaitable<Result<void>> Stop();

  // Any state → QEMU gone (SIGKILL). A VM that was not stopped or failed
  // becomes stopped, with `reason` unless a stop was already under way.
  boost::asio::awaitable<void> Kill(std::string reason);

  // Deletes the runtime dir and the overlay, drops the network attachment
  // and stops persisting changes.
  // Waits for a boot in progress to give up first; QEMU must be gone.
  boost::asio::awaitable<Result<void>> Remove();

  // In the guest, through its agent (vm_guest.cc); the VM must be running.
  // See GuestChannel::StartExec and GuestChannel::Exec.
  boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> StartExec(protocol::ExecRequest request);
  boost::asio::awaitable<Result<protocol::ExecResult>> Exec(protocol::ExecRequest request,
                                                            protocol::OutputSink sink);
  // See GuestChannel::WriteFileChunk and GuestChannel::ReadFileChunk (at
  // most a chunk of kFileChunkBytes is read).
  boost::asio::awaitable<Result<void>> WriteFileChunk(std::string path, std::string data, std::uint64_t offset,
                                                      bool truncate, std::uint32_t mode);
  boost::asio::awaitable<Result<protocol::FileChunk>> ReadFileChunk(std::string path, std::uint64_t offset);
  Result<std::string> Console(std::size_t max_bytes) const;

  // Changes the running VM's egress policy live and records it
  // (vm_network_update.cc).
  Result<void> UpdateNetwork(const NetworkUpdate& update);

 private:
  boost::asio::awaitable<Result<void>> BootSteps(const GoldenSnapshot* golden);
  boost::asio::awaitable<Result<void>> AdoptSteps(std::string note);
  // Gives the running QEMU a new console endpoint (chardev-change), drained
  // from now on: the earlier daemon's end died with it.
  boost::asio::awaitable<Result<void>> ReconnectConsole();
  boost::asio::awaitable<Result<void>> LaunchQemu(const GoldenSnapshot* golden, BootPhases& phases);
  boost::asio::awaitable<Result<void>> ConnectAgent(std::chrono::milliseconds timeout);
  // The guest channel ended: a running VM not being stopped records why.
  void OnChannelClosed(const Error& error);
  boost::asio::awaitable<Result<void>> LoadGolden(const GoldenSnapshot& golden, std::chrono::milliseconds timeout);
  boost::asio::awaitable<Result<void>> GiveIdentity(std::chrono::milliseconds timeout);
  // vm_workspace.cc: a virtiofsd per mount, their devices added to `spec`
  // (a cold boot: QEMU inherits the returned sockets) or, for a clone,
  // kept in fs_plug_ends_ for HotplugMounts; then, once the agent answers,
  // the guest mounts them.
  Result<std::vector<UniqueFd>> StartVirtiofsds(QemuLaunchSpec& spec, bool hotplug);
  // A clone, after `cont`: each virtiofsd's socket passed to QEMU (getfd),
  // a chardev on it and a vhost-user-fs-pci device in a hot-plug port.
  boost::asio::awaitable<Result<void>> HotplugMounts(std::chrono::milliseconds timeout);
  // `retry`: the devices were hot-plugged and the guest may not have
  // probed them yet; each mount is tried again until `timeout`.
  boost::asio::awaitable<Result<void>> MountInGuest(std::chrono::milliseconds timeout, bool retry);
  // Ends a failed restore's QEMU and clears what the cold boot makes anew.
  boost::asio::awaitable<void> DiscardFailedRestore();
  static boost::asio::awaitable<void> WatchQemu(std::shared_ptr<Vm> self, QemuProcess* process);
  void OnQemuExit(QemuProcess* process, const ExitStatus& status);
  // Marks a named-snapshot operation under way; kConflict if one already is.
  Result<void> BeginSnapshotOp();
  // Waits until `done()` holds or `timeout` passes; returns done(). Woken by
  // every state change and by QEMU's exit. Several coroutines may wait at
  // once (a Stop's grace and a Remove's kill), so each has its own timer:
  // common/notifier.h serves one waiter.
  boost::asio::awaitable<bool> WaitFor(std::function<bool()> done, std::chrono::milliseconds timeout);
  void WakeWaiters();
  // Moves to `state` if the drawing has that arrow; otherwise logs the
  // refusal and changes nothing. True when moved.
  bool SetState(VmState state, std::string reason = "");
  // Logs, persists and wakes waiters for the state the Vm is in.
  void Announce();
  Result<void> RequireRunning() const;
  // kConflict: "vm <id> is <state>".
  Error StateConflict() const;
  std::string FailureReasonFromLogs(const ExitStatus& status) const;
  std::string LastQemuLogLine() const;
  // The console's last `max_bytes`: from memory while the daemon drains it,
  // else (a VM an earlier daemon ran) from its file.
  std::string ConsoleTail(std::size_t max_bytes) const;
  // Why QEMU is gone, for the error of the boot step that found it gone.
  std::string ExitReason() const;
  bool qemu_running() const;

  VmContext context_;
  VmSpec spec_;
  VmState state_ = VmState::kCreating;
  std::string reason_;
  std::int64_t created_at_;
  // Set once the VM is meant to go down: QEMU exiting after this is a stop
  // (with this reason), not a failure. The first reason given wins.
  std::optional<std::string> stop_reason_;
  std::unique_ptr<QemuProcess> qemu_;
  std::uint64_t qemu_start_time_ = 0;  // VmRecord::qemu_start_time
  // A failed restore's QEMU, reaped; kept so its watcher never outlives it.
  std::unique_ptr<QemuProcess> retired_qemu_;
  std::unique_ptr<qmp::QmpClient> qmp_;
  std::unique_ptr<GuestChannel> channel_;
  // The serial console of every QEMU this Vm launches; made at the first.
  std::unique_ptr<ConsoleLog> console_;
  std::unique_ptr<NetAttachment> network_;
  // While QEMU may use them; dropped (killed and reaped) when it is gone.
  std::vector<std::unique_ptr<VirtiofsdProcess>> virtiofsds_;
  // QEMU's RAM, shared: with spec_.ram_becomes_template, or a clone with
  // mounts (a copy of the template, which virtiofsd maps too).
  UniqueFd guest_ram_;
  // A clone's ends of its virtiofsds' sockets until HotplugMounts hands them over.
  std::vector<UniqueFd> fs_plug_ends_;
  bool restore_failed_at_mounts_ = false;
  bool creating_announced_ = false;
  bool booting_ = false;
  bool restoring_ = false;  // QEMU exiting now is a failed restore, not a failed VM
  bool snapshot_op_ = false;
  std::string boot_ = "cold";  // VmInfo::boot
  std::string restore_error_;
  std::string channel_error_;  // VmInfo::guest_channel_error
  std::chrono::steady_clock::time_point up_since_ = std::chrono::steady_clock::now();
  bool removed_ = false;  // files gone; nothing may be persisted any more
  std::vector<boost::asio::steady_timer*> waiters_;
};

}  // namespace agentvm
