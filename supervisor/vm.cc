#include "supervisor/vm.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/logging.h"
#include "common/spawn.h"
#include "common/unique_fd.h"
#include "qmp/migration.h"
#include "qmp/qmp_client.h"
#include "supervisor/console_log.h"
#include "supervisor/guest_channel.h"
#include "supervisor/memory_template.h"
#include "supervisor/mount_policy.h"
#include "supervisor/process_identity.h"
#include "supervisor/qemu_command_line.h"
#include "supervisor/vm_network.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr milliseconds kAgentShutdownTimeout{2000};
constexpr milliseconds kKillTimeout{10000};

std::shared_ptr<spdlog::logger> Log() { return Logger("vm"); }

std::string ReadFileTail(const fs::path& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff start = size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  in.seekg(start);
  std::string text(static_cast<std::size_t>(size - start), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  return text;
}

// The last line of `text` that contains `needle` (or the last non-empty line
// when needle is empty), trimmed.
std::string LastLine(const std::string& text, const std::string& needle = "") {
  std::istringstream lines(text);
  std::string line, found;
  while (std::getline(lines, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    if (needle.empty() || line.find(needle) != std::string::npos) found = line;
  }
  return found;
}

Result<void> MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kInternal, "create " + dir.string() + ": " + ec.message());
  // Sockets and disks of a VM are for the daemon only.
  fs::permissions(dir, fs::perms::owner_all, ec);
  return {};
}

// SharedCopyOfTemplate on a thread of its own: the copy (about 0.1 s for
// 256 MiB) must not hold up every other VM's work on the daemon's thread.
boost::asio::awaitable<Result<UniqueFd>> CopyTemplate(std::shared_ptr<const MemoryTemplate> source) {
  co_return SharedCopyOfTemplate(*source);
}
boost::asio::awaitable<Result<UniqueFd>> CopyOffThisThread(std::shared_ptr<const MemoryTemplate> source) {
  static boost::asio::thread_pool copier(1);
  auto task = boost::asio::co_spawn(copier, CopyTemplate(std::move(source)), boost::asio::use_awaitable);
  co_return co_await std::move(task);
}

}  // namespace

Vm::Vm(VmContext context, VmSpec spec, std::unique_ptr<NetAttachment> network)
    : context_(std::move(context)),
      spec_(std::move(spec)),
      created_at_(std::time(nullptr)),
      network_(std::move(network)) {
  if (network_) spec_.network = network_->info();
}

Vm::Vm(VmContext context, VmSpec spec, VmState state, std::string reason, std::int64_t created_at)
    : context_(std::move(context)),
      spec_(std::move(spec)),
      state_(state),
      reason_(std::move(reason)),
      created_at_(created_at) {}

Vm::~Vm() = default;

void Vm::LoadRecordedDetails(const VmRecord& record) {
  if (!record.boot.empty()) boot_ = record.boot;
  channel_error_ = record.guest_channel_error;
  qemu_start_time_ = record.qemu_start_time;
}

bool Vm::qemu_running() const { return qemu_ && !qemu_->exit_status(); }

VmInfo Vm::Info() const {
  VmInfo info{
      .id = spec_.id,
      .image = spec_.image.name,
      .state = state_,
      .cpus = spec_.cpus,
      .memory_mib = spec_.memory_mib,
      .channel = std::string(ChannelKindName(context_.channel)),
      .accel = std::string(AccelName(context_.accel)),
      .reason = reason_,
      .created_at = created_at_,
      .network = spec_.network,
      .boot = boot_,
      .restore_error = restore_error_,
      .pool = spec_.pool,
      .guest_channel_error = channel_error_,
      .mounts = spec_.mounts,
      .mount_owner = spec_.mount_owner,
  };
  if (qemu_running()) info.pid = qemu_->pid();
  return info;
}

VmRecord Vm::Record() const {
  return VmRecord{
      .id = spec_.id,
      .image = spec_.image.name,
      .state = std::string(VmStateName(state_)),
      .cpus = spec_.cpus,
      .memory_mib = spec_.memory_mib,
      .accel = std::string(AccelName(context_.accel)),
      .channel = std::string(ChannelKindName(context_.channel)),
      .guest_cid = spec_.guest_cid,
      .pid = qemu_running() ? qemu_->pid() : 0,
      .runtime_dir = spec_.paths.runtime_dir.string(),
      .disk_dir = spec_.paths.disk_dir.string(),
      .reason = reason_,
      .created_at = created_at_,
      .network = NetworkInfoToRecord(spec_.network),
      .boot = boot_,
      .pool = spec_.pool,
      .unclaimed = spec_.unclaimed,
      .qemu_start_time = qemu_running() ? qemu_start_time_ : 0,
      .guest_channel_error = channel_error_,
      .mounts = MountsToRecord(spec_.mounts),
  };
}

void Vm::Claim() {
  spec_.unclaimed = false;
  if (!spec_.pool.empty()) boot_ = "pool";
  if (context_.on_change && !removed_) context_.on_change(Record());
}

std::chrono::steady_clock::duration Vm::Age() const { return std::chrono::steady_clock::now() - up_since_; }

bool Vm::SetState(VmState state, std::string reason) {
  if (!IsVmTransition(state_, state)) {
    Log()->warn("{}: refused to go from {} to {}{}", spec_.id, VmStateName(state_), VmStateName(state),
                 reason.empty() ? "" : " (" + reason + ")");
    return false;
  }
  state_ = state;
  reason_ = std::move(reason);
  Announce();
  return true;
}

Error Vm::StateConflict() const {
  return Error{ErrorCode::kConflict, "vm " + spec_.id + " is " + std::string(VmStateName(state_))};
}

void Vm::Announce() {
  if (reason_.empty()) {
    Log()->info("{}: {}", spec_.id, VmStateName(state_));
  } else {
    Log()->info("{}: {} ({})", spec_.id, VmStateName(state_), reason_);
  }
  if (context_.on_change && !removed_) context_.on_change(Record());
  WakeWaiters();
}

void Vm::WakeWaiters() {
  for (auto* timer : waiters_) timer->cancel();
}

boost::asio::awaitable<bool> Vm::WaitFor(std::function<bool()> done, milliseconds timeout) {
  const auto self = shared_from_this();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    boost::asio::steady_timer timer(context_.executor, deadline);
    waiters_.push_back(&timer);
    boost::system::error_code ec;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    std::erase(waiters_, &timer);
  }
  co_return done();
}

boost::asio::awaitable<Result<void>> Vm::Boot(std::optional<GoldenSnapshot> golden) {
  const auto self = shared_from_this();
  // Only a new VM boots; a second Boot() would fail or kill the first's QEMU.
  if (booting_ || state_ != VmState::kCreating) co_return Fail(StateConflict());
  booting_ = true;
  // A clone with mounts needs its RAM in a memfd virtiofsd can map: a copy
  // of the template. The Supervisor asks for no other; should it, it cold-boots.
  if (!spec_.mounts.empty() && golden && !golden->memory) {
    restore_error_ = std::string(kMountsNeedTemplate);
    golden.reset();
  }
  Result<void> booted;
  if (golden) {
    // Until the failed restore's QEMU is reaped, its exit is not the VM's.
    restoring_ = true;
    booted = co_await BootSteps(&*golden);
    if (booted) {
      boot_ = "restore";
    } else if (!stop_reason_) {
      restore_error_ = booted.error().message;
      Log()->warn("{}: restore failed ({}); cold-booting instead", spec_.id, restore_error_);
      co_await DiscardFailedRestore();
      golden.reset();
    }
    restoring_ = false;
  }
  if (!golden) {
    boot_ = "cold";
    booted = co_await BootSteps(nullptr);
  }
  booting_ = false;
  up_since_ = std::chrono::steady_clock::now();
  WakeWaiters();
  if (booted) co_return booted;
  // Whatever step failed, no QEMU may outlive a failed boot. A VM killed
  // meanwhile has stopped, not failed.
  if (IsVmTransition(state_, VmState::kFailed)) SetState(VmState::kFailed, booted.error().message);
  co_await Kill("boot failed");
  co_return Fail(booted.error().code, "boot " + spec_.id + ": " + reason_);
}

boost::asio::awaitable<void> Vm::DiscardFailedRestore() {
  if (channel_) channel_->Close();
  if (qmp_) qmp_->Close();
  if (qemu_) {
    qemu_->Kill(SIGKILL);
    co_await qemu_->WaitExit();
    retired_qemu_ = std::move(qemu_);
  }
  channel_.reset();
  qmp_.reset();
  // The cold boot starts its own virtiofsds on fresh sockets and RAM.
  virtiofsds_.clear();
  fs_plug_ends_.clear();
  guest_ram_.reset();
  std::error_code ec;
  fs::remove(spec_.paths.overlay(), ec);
  for (const auto& socket : {spec_.paths.qmp_socket(), spec_.paths.agent_socket()}) fs::remove(socket, ec);
}

QemuLaunchSpec Vm::LaunchSpecFor(const GoldenSnapshot* golden) const {
  const VmPaths& paths = spec_.paths;
  const std::string channel_arg =
      context_.channel == ChannelKind::kVsock ? "agentvm.channel=vsock" : "agentvm.channel=serial";
  std::string kernel_args = spec_.image.kernel_args + " " + channel_arg + " agentvm.hostname=" + spec_.id;
  const int tap_fd = network_ ? network_->tap_fd() : -1;
  if (tap_fd >= 0) kernel_args += " " + network_->KernelArgs();
  QemuLaunchSpec spec{
      .qemu_binary = context_.qemu_binary,
      .vm_id = spec_.id,
      .accel = context_.accel,
      .cpus = spec_.cpus,
      .memory_mib = spec_.memory_mib,
      .kernel = spec_.image.kernel.string(),
      .initrd = spec_.image.initrd.string(),
      .kernel_args = kernel_args,
      .base_image = fs::absolute(spec_.image.rootfs).string(),
      .overlay = paths.overlay().string(),
      .frozen_image = golden ? golden->disk.string() : std::string(),
      .console_log = paths.console_log().string(),
      .pidfile = paths.pidfile().string(),
      .channel = context_.channel,
      .guest_cid = spec_.guest_cid,
      .tap_fd = tap_fd,
      .mac = spec_.network.mac,
      .incoming_defer = golden != nullptr,
  };
  spec.hotplug_ports = spec_.hotplug_ports || !spec_.mounts.empty() ? static_cast<int>(kMaxMounts) : 0;
  if (golden && golden->memory && !spec_.mounts.empty()) {
    // Its own copy of the template, mapped shared as the golden VM's was
    // (the same backend, so its state loads with x-ignore-shared alike).
    spec.memory = GuestMemory::kTemplateSource;
    spec.memory_fd = guest_ram_.get();
  } else if (golden && golden->memory) {
    spec.memory = GuestMemory::kTemplateClone;
    spec.memory_fd = golden->memory->fd();
  } else if (spec_.ram_becomes_template) {
    spec.memory = GuestMemory::kTemplateSource;
    spec.memory_fd = guest_ram_.get();
  }
  return spec;
}

boost::asio::awaitable<Result<void>> Vm::BootSteps(const GoldenSnapshot* golden) {
  // A first boot starts in creating; a cold boot after a failed restore
  // comes back to it, or is still in it when the restore failed before its
  // QEMU started (its overlay, a clone's virtiofsds): said once.
  if (state_ == VmState::kCreating) {
    if (!creating_announced_) Announce();
    creating_announced_ = true;
  } else if (!SetState(VmState::kCreating)) {
    co_return Fail(StateConflict());
  }
  // Where a boot's time goes, logged once it is up: the phases of a
  // restore are what its speed is made of (bench/README.md, section 12).
  BootPhases phases;
  if (auto made = MakePrivateDir(spec_.paths.runtime_dir); !made) co_return made;
  if (auto made = MakePrivateDir(spec_.paths.disk_dir); !made) co_return made;
  if (auto launched = co_await LaunchQemu(golden, phases); !launched) co_return launched;

  const auto deadline = std::chrono::steady_clock::now() + context_.agent_timeout;
  auto remaining = [&] {
    return std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(
                                         deadline - std::chrono::steady_clock::now()));
  };
  // A clone's virtio-serial port is connected before its state is loaded:
  // the restored port says "host connected", so the guest sees no change.
  // A vsock listener survives the transport reset the load causes, so
  // vsock connects after `cont`.
  const bool connect_first = !golden || context_.channel == ChannelKind::kVirtioSerial;
  if (connect_first) {
    if (auto connected = co_await ConnectAgent(remaining()); !connected) co_return connected;
    phases.Done("connect");
  }
  if (golden) {
    if (auto loaded = co_await LoadGolden(*golden, remaining()); !loaded) co_return loaded;
    phases.Done("load and cont");
    if (!spec_.mounts.empty()) {
      // The guest probes the devices while the agent is reached and given
      // its identity; the mounts wait for them below.
      if (auto plugged = co_await HotplugMounts(remaining()); !plugged) {
        restore_failed_at_mounts_ = true;
        co_return plugged;
      }
      phases.Done("hot-plug");
    }
    if (!connect_first) {
      if (auto connected = co_await ConnectAgent(remaining()); !connected) co_return connected;
      phases.Done("connect");
    }
  }

  auto ready = co_await channel_->WaitReady(remaining());
  phases.Done("agent ready");
  if (!qemu_running()) co_return Fail(ErrorCode::kUnavailable, ExitReason());
  if (!ready) {
    const std::string console = LastLine(ConsoleTail(4096));
    co_return Fail(ready.error().code,
                   "guest agent did not answer within " + std::to_string(context_.agent_timeout.count() / 1000) +
                       "s (last console line: " + (console.empty() ? "none" : "'" + console + "'") + ")");
  }
  if (golden) {
    if (auto given = co_await GiveIdentity(remaining()); !given) co_return given;
    phases.Done("identity");
  }
  if (!spec_.mounts.empty()) {
    if (auto mounted = co_await MountInGuest(remaining(), golden != nullptr); !mounted) {
      if (golden) restore_failed_at_mounts_ = true;
      co_return mounted;
    }
    phases.Done("mounts");
  }
  Log()->info("{}: {} in {} ms ({})", spec_.id, golden ? "restored" : "cold-booted", phases.total().count(),
              phases.text());
  if (!SetState(VmState::kRunning)) co_return Fail(StateConflict());
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Vm::LaunchQemu(const GoldenSnapshot* golden, BootPhases& phases) {
  VmHost& host = *context_.host;
  const VmPaths& paths = spec_.paths;
  // A clone's overlay sits on the frozen disk the golden VM ran on.
  std::string backing = golden ? golden->disk.string() : fs::absolute(spec_.image.rootfs).string();
  std::string overlay_path = paths.overlay().string();
  std::string overlay_log = (paths.runtime_dir / "qemu-img.log").string();
  auto overlay = co_await host.CreateOverlay(std::move(backing), spec_.image.disk_bytes, std::move(overlay_path),
                                             std::move(overlay_log));
  if (!overlay) co_return Fail(overlay.error().Wrap("create overlay"));
  if (stop_reason_) co_return Fail(ErrorCode::kConflict, "destroyed while booting");
  phases.Done("overlay");

  if (!console_) {
    console_ = std::make_unique<ConsoleLog>(context_.executor, paths.console_log(), spec_.id,
                                            context_.console_ring_bytes, context_.console_file_bytes);
  }
  if (spec_.ram_becomes_template && !golden) {
    auto ram = GuestRamMemfd(static_cast<std::uint64_t>(spec_.memory_mib) << 20);
    if (!ram) co_return Fail(ram.error().Wrap("guest RAM"));
    guest_ram_ = std::move(*ram);
  }
  const bool hotplug = golden && !spec_.mounts.empty();
  if (hotplug && golden->memory) {
    auto ram = co_await CopyOffThisThread(golden->memory);
    if (!ram) {
      restore_failed_at_mounts_ = true;  // the host's memory, not the snapshot
      co_return Fail(ram.error().Wrap("copy the memory template"));
    }
    guest_ram_ = std::move(*ram);
    phases.Done("copy RAM");
  }
  // QEMU inherits its own copy; this one closes when the launch is done.
  auto console_end = console_->Connect();
  if (!console_end) co_return Fail(console_end.error().Wrap("console"));
  QemuLaunchSpec launch_spec = LaunchSpecFor(golden);
  launch_spec.console_fd = console_end->get();
  // Ours close when the launch is done, as the console's end does.
  auto listeners = ListenForQemu(paths, launch_spec);
  if (!listeners) co_return Fail(listeners.error());
  // QEMU inherits these too; ours close when the launch is done.
  auto fs_ends = StartVirtiofsds(launch_spec, hotplug);
  if (!fs_ends) {
    if (hotplug) restore_failed_at_mounts_ = true;
    co_return Fail(fs_ends.error());
  }
  QemuLaunch launch = QemuLaunchFor(launch_spec, paths);
  auto launched = co_await host.LaunchQemu(std::move(launch));
  if (!launched) co_return Fail(launched.error().Wrap("launch qemu"));
  qemu_ = std::move(*launched);
  phases.Done("spawn");
  // QEMU has its own fd and mapping of a clone's RAM copy; no other process
  // needs this one (a golden VM's is taken for the template after the save).
  if (hotplug) guest_ram_.reset();
  qemu_start_time_ = ProcessStartTime(qemu_->pid()).value_or(0);
  SpawnDetached(context_.executor, WatchQemu(shared_from_this(), qemu_.get()), "qemu watcher of " + spec_.id);
  if (stop_reason_) co_return Fail(ErrorCode::kConflict, "destroyed while booting");
  SetState(VmState::kStarting);

  std::string qmp_socket = paths.qmp_socket().string();
  std::string vm_id = spec_.id;
  auto qmp = co_await host.ConnectQmp(std::move(qmp_socket), context_.qmp_timeout, std::move(vm_id));
  if (!qemu_running()) co_return Fail(ErrorCode::kUnavailable, ExitReason());
  if (!qmp) co_return Fail(qmp.error().Wrap("connect to QMP"));
  qmp_ = std::move(*qmp);
  phases.Done("qemu up");
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Vm::ConnectAgent(milliseconds timeout) {
  GuestAddress address{.channel = context_.channel,
                       .unix_socket = spec_.paths.agent_socket().string(),
                       .cid = spec_.guest_cid};
  auto socket = co_await context_.host->ConnectGuest(std::move(address), timeout);
  if (!socket) co_return Fail(socket.error().Wrap("connect to guest agent"));
  channel_ = std::make_unique<GuestChannel>(std::move(*socket), spec_.id);
  std::weak_ptr<Vm> weak = weak_from_this();
  channel_->OnClosed([weak](const Error& error) {
    if (auto self = weak.lock()) self->OnChannelClosed(error);
  });
  channel_->Start();
  co_return Result<void>{};
}

void Vm::OnChannelClosed(const Error& error) {
  // While booting, the boot step waiting on the channel reports it; once
  // the VM is going down, or its QEMU is gone, its end is expected.
  if (state_ != VmState::kRunning || stop_reason_ || !qemu_running() || !channel_error_.empty()) return;
  channel_error_ = error.message;
  Log()->warn("{}: guest channel failed: {}", spec_.id, channel_error_);
  if (context_.on_change && !removed_) context_.on_change(Record());
}

boost::asio::awaitable<Result<void>> Vm::LoadGolden(const GoldenSnapshot& golden, milliseconds timeout) {
  UniqueFd fd(::open(golden.state_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) co_return Fail(ErrorCode::kInternal, "open " + golden.state_file.string() + ": " + std::strerror(errno));
  const RamInStream ram = golden.memory ? RamInStream::kIgnoreShared : RamInStream::kAll;
  Result<void> loaded = co_await LoadState(*qmp_, fd.get(), ram, timeout);
  fd.reset();
  if (!loaded) {
    // QEMU's own words on a bad stream are in its log, not in QMP.
    const std::string detail = LastQemuLogLine();
    co_return Fail(loaded.error().code, "load golden state: " + loaded.error().message +
                                            (detail.empty() ? "" : " (qemu: " + detail + ")"));
  }
  auto resumed = co_await qmp_->Execute("cont");
  if (!resumed) co_return Fail(resumed.error().ToError().Wrap("resume clone"));
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Vm::GiveIdentity(milliseconds timeout) {
  GuestIdentity identity;
  identity.hostname = spec_.id;
  if (network_) identity.network = network_->GuestConfig();
  auto configured = co_await channel_->Configure(std::move(identity), timeout);
  if (!configured) co_return Fail(configured.error().Wrap("give the clone its identity"));
  co_return Result<void>{};
}

boost::asio::awaitable<void> Vm::WatchQemu(std::shared_ptr<Vm> self, QemuProcess* process) {
  const ExitStatus status = co_await process->WaitExit();
  self->OnQemuExit(process, status);
}

void Vm::OnQemuExit(QemuProcess* process, const ExitStatus& status) {
  if (process != qemu_.get()) return;  // a failed restore's QEMU, already dealt with
  virtiofsds_.clear();  // nothing is left to serve
  if (channel_) channel_->Close();
  if (qmp_) qmp_->Close();
  WakeWaiters();
  // Boot() decides what a failed restore means (a cold boot next).
  if (restoring_) return;
  if (state_ == VmState::kFailed || state_ == VmState::kStopped) return;
  if (stop_reason_) {
    SetState(VmState::kStopped, *stop_reason_);
  } else {
    SetState(VmState::kFailed, FailureReasonFromLogs(status));
  }
}

std::string Vm::ExitReason() const {
  if (restoring_) return "qemu exited: " + LastQemuLogLine();
  // Its watcher may not have seen the exit yet: the status is the reason.
  if (qemu_ && qemu_->exit_status()) return FailureReasonFromLogs(*qemu_->exit_status());
  return reason_;
}

std::string Vm::LastQemuLogLine() const { return LastLine(ReadFileTail(spec_.paths.qemu_log(), 4096)); }

std::string Vm::FailureReasonFromLogs(const ExitStatus& status) const {
  std::string reason = "qemu " + status.Describe();
  std::string detail = LastLine(ConsoleTail(16384), "Kernel panic");
  if (detail.empty()) detail = LastLine(ReadFileTail(spec_.paths.qemu_log(), 4096));
  if (!detail.empty()) reason += ": " + detail;
  return reason;
}

boost::asio::awaitable<Result<void>> Vm::Stop() {
  if (!SetState(VmState::kStopping)) co_return Fail(StateConflict());
  stop_reason_ = "stopped by request";
  const auto self = shared_from_this();  // callers may drop theirs meanwhile

  // The agent powers the guest off cleanly; without it, ACPI is the polite ask.
  bool asked = false;
  if (channel_ && !channel_->closed()) {
    asked = static_cast<bool>(co_await channel_->Shutdown(kAgentShutdownTimeout));
  }
  if (!asked && qmp_ && qmp_->connected()) {
    asked = static_cast<bool>(co_await qmp_->Execute("system_powerdown"));
  }
  const bool exited = asked && co_await WaitFor([this] { return !qemu_running(); },
                                                std::chrono::duration_cast<milliseconds>(context_.stop_grace));
  if (!exited) {
    Log()->warn("{}: guest did not power off within {}s; killing qemu", spec_.id, context_.stop_grace.count());
  }
  co_await Kill(*stop_reason_);
  co_return Result<void>{};
}

boost::asio::awaitable<void> Vm::Kill(std::string reason) {
  if (!stop_reason_) stop_reason_ = std::move(reason);
  if (qemu_running()) {
    qemu_->Kill(SIGKILL);
    if (!co_await WaitFor([this] { return !qemu_running(); }, kKillTimeout)) {
      Log()->error("{}: qemu pid {} survived SIGKILL", spec_.id, qemu_->pid());
    }
  }
  virtiofsds_.clear();
  if (IsVmTransition(state_, VmState::kStopped)) SetState(VmState::kStopped, *stop_reason_);
}

boost::asio::awaitable<Result<void>> Vm::Remove() {
  // A boot in progress notices stop_reason_ at its next step and gives up.
  co_await Kill("removed");
  if (!co_await WaitFor([this] { return !booting_; }, kKillTimeout)) {
    co_return Fail(ErrorCode::kInternal, "vm " + spec_.id + ": boot did not wind down");
  }
  if (qemu_running()) co_return Fail(ErrorCode::kInternal, "vm " + spec_.id + " still has a running qemu");
  removed_ = true;
  network_.reset();
  console_.reset();
  std::error_code ec;
  for (const auto& dir : {spec_.paths.runtime_dir, spec_.paths.disk_dir}) {
    fs::remove_all(dir, ec);
    if (ec) co_return Fail(ErrorCode::kInternal, "remove " + dir.string() + ": " + ec.message());
  }
  co_return Result<void>{};
}

Result<std::string> Vm::Console(std::size_t max_bytes) const { return ConsoleTail(max_bytes); }

std::string Vm::ConsoleTail(std::size_t max_bytes) const {
  if (console_) return console_->Tail(max_bytes);
  return ReadFileTail(spec_.paths.console_log(), max_bytes);
}

}  // namespace agentvm
