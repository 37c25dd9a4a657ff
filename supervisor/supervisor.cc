#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include "supervisor/pidfd.h"
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <random>

#include <boost/asio/use_awaitable.hpp>

#include "common/logging.h"
#include "common/notifier.h"
#include "common/spawn.h"
#include "common/unique_fd.h"
#include "supervisor/accel.h"
#include "supervisor/mount_policy.h"
#include "supervisor/names.h"

namespace agentvm {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("supervisor"); }

}  // namespace

Result<std::unique_ptr<Supervisor>> Supervisor::Create(boost::asio::any_io_executor executor,
                                                       const DaemonConfig& config, const HostFacts& host) {
  if (auto presets = net::EgressPresets::Make(config.egress_presets); !presets) return Fail(presets.error());
  auto accel = ChooseAccel(config.accel, host);
  if (!accel) return Fail(accel.error());
  if (!accel->warning.empty()) Log()->warn("{}", accel->warning);
  const ChannelKind channel = ChooseChannel(host);
  Log()->info("accelerator {}, control channel {}", AccelName(accel->accel), ChannelKindName(channel));

  std::error_code ec;
  std::filesystem::create_directories(config.state_dir, ec);
  if (ec) return Fail(ErrorCode::kInternal, "create state dir " + config.state_dir + ": " + ec.message());
  auto store = StateStore::Open(StateDatabasePath(config.state_dir));
  if (!store) return Fail(store.error());
  // Part of every golden snapshot's identity: a QEMU upgrade rebuilds them.
  std::string qemu_version;
  if (config.golden_snapshots) {
    auto version = QemuVersion(config.qemu_binary);
    if (!version) return Fail(version.error().Wrap("golden snapshots need the QEMU version"));
    qemu_version = *version;
  }
  std::shared_ptr<Jailer> jailer;
  if (config.jail.enabled) {
    auto made = Jailer::Create(config.jail, config.qemu_binary, config.run_dir);
    if (!made) return Fail(made.error());
    jailer = std::move(*made);
  } else {
    for (const auto& line : JailOffWarnings()) Log()->warn("{}", line);
  }
  return std::unique_ptr<Supervisor>(new Supervisor(std::move(executor), config, std::move(jailer), accel->accel,
                                                    channel,
                                                    std::move(*store), std::move(qemu_version)));
}

Supervisor::Supervisor(boost::asio::any_io_executor executor, DaemonConfig config, std::shared_ptr<Jailer> jailer,
                       Accel accel, ChannelKind channel, std::unique_ptr<StateStore> store, std::string qemu_version)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      presets_(net::EgressPresets::Make(config_.egress_presets).value()),
      accel_(accel),
      channel_(channel),
      images_(config_.image_dir),
      jailer_(std::move(jailer)),
      host_(std::make_shared<RealVmHost>(executor_, config_.qemu_img_binary, jailer_)),
      store_(std::move(store)),
      network_(std::make_shared<VmNetwork>(executor_, config_, *store_)) {
  network_->OnEgressEntry([metrics = metrics_](const net::EgressEntry& entry) {
    if (entry.kind == "dns") metrics->ObserveDnsQuestion(entry.verdict);
    if (entry.kind == "refused") metrics->ObserveRefusedConnectionLogged();
  });
  if (!config_.golden_snapshots) {
    if (!config_.pools.empty()) {
      Log()->warn("golden snapshots are off: the {} configured pool(s) stay empty", config_.pools.size());
    }
    return;
  }
  golden_ = std::make_unique<GoldenSnapshotBuilder>(
      executor_, std::filesystem::path(config_.state_dir) / "golden", std::move(qemu_version),
      config_.memory_templates == "cow",
      [this](const GoldenKey& key) { return BootGoldenVm(key); },
      [this](std::shared_ptr<Vm> vm) -> boost::asio::awaitable<void> { co_await RemoveVm(std::move(vm)); });
  MakePools();
}

VmContext Supervisor::MakeContext() {
  return VmContext{
      .executor = executor_,
      .host = host_,
      .qemu_binary = config_.qemu_binary,
      .virtiofsd_binary = config_.virtiofsd_binary,
      .virtiofs_cache = config_.virtiofs_cache,
      .accel = accel_,
      .channel = channel_,
      .agent_timeout = config_.agent_timeout,
      .stop_grace = config_.stop_grace,
      .console_ring_bytes = static_cast<std::size_t>(config_.console_memory_kib) * 1024,
      .console_file_bytes = static_cast<std::uint64_t>(config_.console_file_kib) * 1024,
      .on_change = [this](const VmRecord& record) { OnVmChange(record); },
  };
}

boost::asio::awaitable<void> Supervisor::Shutdown() {
  for (auto& [name, pool] : pools_) pool->RequestStop();
  // Stop all running VMs at once; each Stop is bounded by stop_grace + kill.
  // Unclaimed VMs hold nothing of a user's: killed at once.
  auto remaining = std::make_shared<int>(0);
  Notifier all_stopped(executor_);
  for (auto& [id, vm] : vms_) {
    ++*remaining;
    SpawnDetached(
        executor_,
        [vm, remaining, &all_stopped]() -> boost::asio::awaitable<void> {
          if (vm->state() == VmState::kRunning && !vm->unclaimed()) {
            co_await vm->Stop();
          } else {
            co_await vm->Kill("agentvmd shut down");
          }
          if (--*remaining == 0) all_stopped.Notify();
        },
        id + ": stop at shutdown", Log());
  }
  if (*remaining > 0) co_await all_stopped.Wait();
  for (auto& [name, pool] : pools_) co_await pool->Stop();
  if (golden_) co_await golden_->WaitIdle();
  network_->Shutdown();
}

std::string Supervisor::NewVmId() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  for (;;) {
    std::string id = "vm-";
    for (int i = 0; i < 12; ++i) id += kHex[random() % 16];
    if (!vms_.contains(id)) return id;
  }
}

std::uint32_t Supervisor::NewGuestCid() const {
  // CIDs 0-2 are reserved (hypervisor, local, host). Unique among our VMs; a
  // clash with another tool's VM makes QEMU fail to start, which is reported.
  std::uint32_t cid = 3;
  for (bool clash = true; clash;) {
    clash = false;
    for (const auto& [id, vm] : vms_) {
      if (vm->Record().guest_cid == cid) {
        ++cid;
        clash = true;
      }
    }
  }
  return cid;
}

Result<std::shared_ptr<Vm>> Supervisor::Find(const std::string& id) {
  if (auto valid = ValidateVmId(id); !valid) return Fail(valid.error());
  auto it = vms_.find(id);
  if (it == vms_.end() || it->second->unclaimed()) return Fail(ErrorCode::kNotFound, "no such VM: " + id);
  return it->second;
}

NetworkMode Supervisor::DefaultNetworkMode() const {
  return NetworkModeFromName(config_.default_network).value_or(NetworkMode::kNatFiltered);
}

Result<std::shared_ptr<Vm>> Supervisor::MakeVm(const Image& image, int cpus, int memory_mib,
                                               const NetworkRequest& network_request, VmPurpose purpose) {
  const std::string id = NewVmId();
  auto network = network_->Attach(id, network_request);
  if (!network) return Fail(network.error());
  VmSpec spec{.id = id,
              .image = image,
              .cpus = cpus,
              .memory_mib = memory_mib,
              .guest_cid = channel_ == ChannelKind::kVsock ? NewGuestCid() : 0,
              .paths = VmPaths::For(config_.run_dir, config_.state_dir, id),
              .pool = std::move(purpose.pool),
              .mounts = std::move(purpose.mounts),
              .mount_owner = purpose.mount_owner,
              .unclaimed = purpose.unclaimed,
              .ram_becomes_template = purpose.ram_becomes_template,
              .hotplug_ports = purpose.hotplug_ports};
  auto vm = std::make_shared<Vm>(MakeContext(), std::move(spec), std::move(*network));
  vms_[id] = vm;
  return vm;
}

boost::asio::awaitable<Result<VmInfo>> Supervisor::Create(CreateVmRequest request) {
  if (request.cpus < kMinCpus || request.cpus > kMaxCpus) {
    co_return Fail(ErrorCode::kInvalidArgument, "cpus must be " + std::to_string(kMinCpus) + ".." + std::to_string(kMaxCpus));
  }
  if (request.memory_mib < kMinMemoryMib || request.memory_mib > kMaxMemoryMib) {
    co_return Fail(ErrorCode::kInvalidArgument,
                   "memory_mib must be " + std::to_string(kMinMemoryMib) + ".." + std::to_string(kMaxMemoryMib));
  }
  auto image = images_.Find(request.image);
  if (!image) co_return Fail(image.error());
  // The VM keeps the preset names and what they expand to now
  // (NetworkInfo::preset_domains); the firewall and the forwarder see only
  // the names.
  if (auto expanded = ExpandPresets(presets_, request.network); !expanded) co_return Fail(expanded.error());

  const auto began = std::chrono::steady_clock::now();
  const MountPolicy mount_policy{.roots = config_.mount_roots,
                                 .daemon_dirs = {config_.state_dir, config_.run_dir, config_.image_dir}};
  auto mounts = ResolveMounts(request.mounts, mount_policy);
  if (!mounts) co_return Fail(mounts.error());
  // A pool's VMs were made before anyone asked for mounts: they have none.
  if (request.boot == BootMode::kAuto && mounts->empty()) {
    if (std::shared_ptr<Vm> warm = TakeFromPool(request)) {
      Log()->info("{}: handed out from pool {}", warm->id(), warm->pool());
      NoteCreated(*warm);
      NoteStarted(*warm, began);
      co_return InfoOf(*warm);
    }
  }
  std::optional<UserIds> mount_owner;
  if (!mounts->empty()) {
    if (!image->default_uid || !image->default_gid) {
      co_return Fail(ErrorCode::kInvalidArgument,
                     "image '" + request.image + "' does not record its default user's uid and gid (image.json " +
                         "default_uid, default_gid), which mounts need: rebuild it with scripts/build-image " +
                         request.image);
    }
    // The operator's choice, else the caller, else (a caller without
    // credentials: none over the socket) root.
    mount_owner = config_.mount_owner.value_or(request.caller.value_or(UserIds{}));
  }
  auto vm = MakeVm(*image, request.cpus, request.memory_mib, request.network,
                   {.mounts = std::move(*mounts), .mount_owner = mount_owner});
  if (!vm) co_return Fail(vm.error());
  Log()->info("{}: create image={} cpus={} memory={}MiB network={} boot={} mounts={}", (*vm)->id(), request.image,
              request.cpus, request.memory_mib, NetworkModeName((*vm)->Info().network.mode),
              BootModeName(request.boot), request.mounts.size());
  NoteCreated(**vm);
  auto booted = co_await BootVm(**vm, request.boot);
  if (!booted) co_return Fail(booted.error());
  NoteStarted(**vm, began);
  co_return InfoOf(**vm);
}

boost::asio::awaitable<Result<void>> Supervisor::RemoveVm(std::shared_ptr<Vm> vm) {
  const std::string id = vm->id();
  auto removed = co_await vm->Remove();
  if (!removed) co_return Fail(removed.error());
  if (auto released = network_->ReleaseLease(id); !released) co_return Fail(released.error());
  if (auto deleted = store_->Delete(id); !deleted) co_return Fail(deleted.error());
  vms_.erase(id);
  if (!vm->unclaimed()) {
    if (auto pool = pools_.find(vm->pool()); pool != pools_.end()) pool->second->Returned(id);
    events_->Publish("removed", id);
  }
  Log()->info("{}: removed", id);
  co_return Result<void>{};
}

Result<std::vector<net::EgressPreset>> Supervisor::Presets() { return presets_.all(); }

Result<std::vector<VmInfo>> Supervisor::List() {
  std::vector<VmInfo> infos;
  for (const auto& [id, vm] : vms_) {
    if (!vm->unclaimed()) infos.push_back(InfoOf(*vm));
  }
  std::sort(infos.begin(), infos.end(), [](const VmInfo& a, const VmInfo& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  return infos;
}

Result<VmInfo> Supervisor::Get(const std::string& id) {
  auto vm = Find(id);
  if (!vm) return Fail(vm.error());
  return InfoOf(**vm);
}

VmInfo Supervisor::InfoOf(const Vm& vm) const {
  VmInfo info = vm.Info();
  info.network.dropped_connections = network_->DroppedConnections(info.network);
  info.network.dns_queries = network_->DnsVerdicts(info.network);
  return info;
}

Result<std::vector<net::EgressEntry>> Supervisor::EgressLog(const std::string& id, std::uint64_t after) {
  auto vm = Find(id);
  if (!vm) return Fail(vm.error());
  return network_->EgressEntries((*vm)->Info().network, after);
}

Result<std::shared_ptr<net::EgressFollower>> Supervisor::FollowEgressLog(const std::string& id,
                                                                         boost::asio::any_io_executor executor) {
  auto vm = Find(id);
  if (!vm) return Fail(vm.error());
  return network_->FollowEgress((*vm)->Info().network, std::move(executor));
}

boost::asio::awaitable<Result<VmInfo>> Supervisor::Stop(const std::string& id) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  auto stopped = co_await (*vm)->Stop();
  if (!stopped) co_return Fail(stopped.error());
  co_return InfoOf(**vm);
}

boost::asio::awaitable<Result<void>> Supervisor::Destroy(const std::string& id, bool force) {
  auto found = Find(id);
  if (!found) co_return Fail(found.error());
  std::shared_ptr<Vm> vm = *found;
  const VmState state = vm->state();
  if (!force && state != VmState::kStopped && state != VmState::kFailed) {
    co_return Fail(ErrorCode::kConflict, "vm " + id + " is " + std::string(VmStateName(state)) +
                                             "; stop it first or remove it with force");
  }
  co_return co_await RemoveVm(std::move(vm));
}

boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> Supervisor::StartExec(const std::string& id,
                                                                                 protocol::ExecRequest request) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  const std::string command = request.argv.empty() ? "" : request.argv.front();
  auto started = co_await (*vm)->StartExec(std::move(request));
  if (!started) co_return Fail(started.error());
  NoteExec(id, command, **started);
  co_return std::move(*started);
}

boost::asio::awaitable<Result<void>> Supervisor::WriteFileChunk(const std::string& id, const std::string& path,
                                                                std::string data, std::uint64_t offset,
                                                                bool truncate, std::uint32_t mode) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  co_return co_await (*vm)->WriteFileChunk(path, std::move(data), offset, truncate, mode);
}

boost::asio::awaitable<Result<protocol::FileChunk>> Supervisor::ReadFileChunk(const std::string& id,
                                                                              const std::string& path,
                                                                              std::uint64_t offset) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  co_return co_await (*vm)->ReadFileChunk(path, offset);
}

Result<std::string> Supervisor::Console(const std::string& id, std::size_t max_bytes) {
  auto vm = Find(id);
  if (!vm) return Fail(vm.error());
  return (*vm)->Console(max_bytes);
}

}  // namespace agentvm
