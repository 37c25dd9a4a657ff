// The Supervisor's golden snapshots, pools and named snapshots
// (docs/snapshots.md). The VM lifecycle itself is in supervisor.cc.
#include "common/logging.h"
#include "supervisor/supervisor.h"

namespace agentvm {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("supervisor"); }

// A ping of an idle agent takes milliseconds; a guest that needs longer is
// not one to hand out.
constexpr std::chrono::milliseconds kHealthPingTimeout{5000};
constexpr std::chrono::milliseconds kWarmUpTimeout{10000};

}  // namespace

GoldenKey Supervisor::GoldenKeyOf(const std::string& image, int cpus, int memory_mib, NetworkMode network,
                                   bool mounts) const {
  return GoldenKey{.image = image,
                   .cpus = cpus,
                   .memory_mib = memory_mib,
                   .channel = channel_,
                   .has_nic = network != NetworkMode::kIsolated,
                   .hotplug_ports = mounts};
}

void Supervisor::MakePools() {
  for (const PoolConfig& config : config_.pools) {
    // ValidateConfig() allowed only nat-filtered and isolated.
    const NetworkMode network = NetworkModeFromName(config.network).value_or(NetworkMode::kIsolated);
    const GoldenKey key = GoldenKeyOf(config.image, config.cpus, config.memory_mib, network, /*mounts=*/false);
    VmPool::Hooks hooks{
        .make = [this, config, network] { return MakePoolClone(config, network); },
        .remove = [this](std::shared_ptr<Vm> vm) -> boost::asio::awaitable<void> {
          co_await RemoveVm(std::move(vm));
        },
        .check = [](Vm& vm) { return vm.Ping(kHealthPingTimeout); },
        .golden_ready = [this, key] { return golden_ && golden_->Exists(key); },
    };
    auto pool = std::make_unique<VmPool>(executor_, config, network, config_.health_check_interval, std::move(hooks));
    const std::string name = pool->name();
    pools_[name] = std::move(pool);
  }
}

void Supervisor::StartPools() {
  for (auto& [name, pool] : pools_) pool->Start();
}

std::shared_ptr<Vm> Supervisor::TakeFromPool(const CreateVmRequest& request) {
  const NetworkMode network = request.network.mode.value_or(DefaultNetworkMode());
  for (auto& [name, pool] : pools_) {
    if (pool->Matches(request, network)) return pool->Take();
  }
  return nullptr;
}

boost::asio::awaitable<Result<void>> Supervisor::BootVm(Vm& vm, BootMode mode) {
  const VmInfo info = vm.Info();
  // Bridge mode gets its address by DHCP at boot; a clone would keep the
  // golden VM's lease. Such VMs always cold-boot.
  if (!golden_ || mode == BootMode::kCold || info.network.mode == NetworkMode::kBridge) co_return co_await vm.Boot();

  const GoldenKey key = GoldenKeyOf(info.image, info.cpus, info.memory_mib, info.network.mode, !info.mounts.empty());
  std::optional<GoldenSnapshot> golden;
  if (mode == BootMode::kRestore) {
    auto got = co_await golden_->Get(key, vm);
    if (got) {
      golden = std::move(*got);
    } else {
      vm.set_restore_error(got.error().message);
    }
  } else {
    // A create does not wait for a golden snapshot to be built: it cold-boots
    // (as fast as building one would be), the snapshot is built after it, so
    // the two boots do not share the CPU, and the next create restores.
    std::string rejected;
    auto found = golden_->Find(key, vm, &rejected);
    if (!found) {
      vm.set_restore_error(found.error().message);
    } else if (*found) {
      golden = std::move(**found);
    } else if (!rejected.empty()) {
      vm.set_restore_error("golden snapshot discarded: " + rejected);
    }
  }
  // QEMU 7.2 cannot migrate vhost-user-fs: a clone with mounts gets its
  // devices hot-plugged after the restore, into RAM that is a shared copy
  // of the template (docs/workspaces.md, "Snapshots and pools").
  if (golden && !info.mounts.empty() && !golden->memory) {
    vm.set_restore_error(std::string(kMountsNeedTemplate));
    golden.reset();
  }
  const bool tried = golden.has_value();
  Result<void> booted = co_await vm.Boot(std::move(golden));
  // It passed every check and QEMU still refused it: never try it again.
  // A hot-plug or mount that failed after the restore is not its fault.
  if (tried && !vm.restore_error().empty() && !vm.restore_failed_at_mounts()) golden_->Discard(key);
  if (mode == BootMode::kAuto && (!tried || !vm.restore_error().empty())) golden_->BuildSoon(key);
  co_return booted;
}

boost::asio::awaitable<Result<std::shared_ptr<Vm>>> Supervisor::BootGoldenVm(const GoldenKey& key) {
  auto image = images_.Find(key.image);
  if (!image) co_return Fail(image.error());
  NetworkRequest network;
  network.mode = key.has_nic ? NetworkMode::kNatFiltered : NetworkMode::kIsolated;
  auto vm = MakeVm(*image, key.cpus, key.memory_mib, network,
                   {.unclaimed = true,
                    .ram_becomes_template = golden_->memory_templates(),
                    .hotplug_ports = key.hotplug_ports});
  if (!vm) co_return Fail(vm.error());
  Log()->info("{}: booting for golden snapshot {}", (*vm)->id(), key.DirName());
  if (auto booted = co_await (*vm)->Boot(); !booted) {
    co_await RemoveVm(*vm);
    co_return Fail(booted.error());
  }
  co_return *vm;
}

boost::asio::awaitable<Result<std::shared_ptr<Vm>>> Supervisor::MakePoolClone(PoolConfig config,
                                                                              NetworkMode network) {
  auto image = images_.Find(config.image);
  if (!image) co_return Fail(image.error());
  NetworkRequest request;
  request.mode = network;
  const std::string pool = VmPool::NameOf(config.image, config.cpus, config.memory_mib, network);
  auto vm = MakeVm(*image, config.cpus, config.memory_mib, request, {.pool = pool, .unclaimed = true});
  if (!vm) co_return Fail(vm.error());
  if (auto booted = co_await BootVm(**vm, BootMode::kRestore); !booted) {
    co_await RemoveVm(*vm);
    co_return Fail(booted.error());
  }
  // A new QEMU translates the guest's code afresh under TCG, so a clone's
  // first exec costs 100-200 ms more than later ones: pay it here, before
  // the VM is handed out, rather than in the user's first command.
  protocol::ExecRequest warm_up{.argv = {"true"}, .timeout = kWarmUpTimeout};
  protocol::OutputSink discard = [](protocol::OutputStream, std::string_view) {};
  auto warmed = co_await (*vm)->Exec(std::move(warm_up), std::move(discard));
  if (!warmed) Log()->warn("{}: warm-up exec failed: {}", (*vm)->id(), warmed.error().message);
  co_return *vm;
}

Result<std::vector<PoolInfo>> Supervisor::Pools() {
  std::vector<PoolInfo> pools;
  for (const auto& [name, pool] : pools_) pools.push_back(pool->Info());
  return pools;
}

boost::asio::awaitable<Result<void>> Supervisor::Release(const std::string& id) {
  // Whatever state it is in, a released VM is done with: its pool (if any)
  // restores a fresh clone in its place.
  co_return co_await Destroy(id, /*force=*/true);
}

boost::asio::awaitable<Result<SnapshotInfo>> Supervisor::SaveSnapshot(const std::string& id,
                                                                       const std::string& name) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  auto saved = co_await (*vm)->SaveSnapshot(name);
  if (!saved) co_return Fail(saved.error());
  events_->Publish("snapshot_saved", id, {{"name", name}, {"vm_state_bytes", saved->vm_state_bytes}});
  co_return std::move(*saved);
}

boost::asio::awaitable<Result<std::vector<SnapshotInfo>>> Supervisor::ListSnapshots(const std::string& id) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  co_return co_await (*vm)->ListSnapshots();
}

boost::asio::awaitable<Result<void>> Supervisor::RestoreSnapshot(const std::string& id, const std::string& name) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  auto restored = co_await (*vm)->RestoreSnapshot(name);
  if (!restored) co_return Fail(restored.error());
  events_->Publish("snapshot_restored", id, {{"name", name}});
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Supervisor::DeleteSnapshot(const std::string& id, const std::string& name) {
  auto vm = Find(id);
  if (!vm) co_return Fail(vm.error());
  co_return co_await (*vm)->DeleteSnapshot(name);
}

}  // namespace agentvm
