// Supervisor: the VmService of the daemon. It owns every Vm (by id), the state
// store, the golden snapshots and pools, and the choices fixed at start-up
// (accelerator, control channel). Pool and golden-snapshot VMs are its VMs
// too, "unclaimed" until handed out: not listed, not reachable by id.
// Everything runs on the daemon's single io_context thread: that thread is
// the "strand" that owns all VM state, so nothing here takes a lock.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "supervisor/config.h"
#include "supervisor/event_log.h"
#include "supervisor/golden_snapshot_builder.h"
#include "supervisor/host_facts.h"
#include "supervisor/jail.h"
#include "supervisor/metrics.h"
#include "supervisor/image_store.h"
#include "supervisor/state_store.h"
#include "supervisor/vm.h"
#include "supervisor/vm_network.h"
#include "supervisor/vm_pool.h"
#include "supervisor/vm_service.h"

namespace agentvm {

class Supervisor : public VmService {
 public:
  static Result<std::unique_ptr<Supervisor>> Create(boost::asio::any_io_executor executor,
                                                    const DaemonConfig& config, const HostFacts& host);

  // Takes over what an earlier daemon left in the state store
  // (supervisor_recover.cc): a VM recorded running whose QEMU still runs
  // (same pid, start time and command line) is adopted: listed as starting
  // until QMP, its console and its agent answer again, then running; one
  // that cannot be adopted is killed and listed as failed with the reason,
  // so `rm` can remove its files and lease. Unclaimed VMs (pool, golden
  // snapshot) are removed outright, as are unfinished snapshots and orphans
  // (a QEMU, run dir or disk dir no record owns). The nftables tables are
  // built afresh; the bridge stays while adopted VMs' taps are on it.
  Result<void> Recover();

  // Starts filling the configured pools (after Recover()).
  void StartPools();

  // Stops every VM (gracefully, bounded by stop_grace) before the daemon
  // exits, then takes down the network it built.
  boost::asio::awaitable<void> Shutdown();

  boost::asio::awaitable<Result<VmInfo>> Create(CreateVmRequest request) override;
  Result<std::vector<VmInfo>> List() override;
  Result<VmInfo> Get(const std::string& id) override;
  boost::asio::awaitable<Result<VmInfo>> Stop(const std::string& id) override;
  boost::asio::awaitable<Result<void>> Destroy(const std::string& id, bool force) override;
  boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> StartExec(const std::string& id,
                                                                        protocol::ExecRequest request) override;
  boost::asio::awaitable<Result<void>> WriteFileChunk(const std::string& id, const std::string& path,
                                                      std::string data, std::uint64_t offset, bool truncate,
                                                      std::uint32_t mode) override;
  boost::asio::awaitable<Result<protocol::FileChunk>> ReadFileChunk(const std::string& id, const std::string& path,
                                                                    std::uint64_t offset) override;
  Result<std::string> Console(const std::string& id, std::size_t max_bytes) override;
  boost::asio::awaitable<Result<void>> Release(const std::string& id) override;
  Result<std::vector<PoolInfo>> Pools() override;
  Result<std::vector<net::EgressPreset>> Presets() override;
  Result<std::vector<net::EgressEntry>> EgressLog(const std::string& id, std::uint64_t after) override;
  Result<std::shared_ptr<net::EgressFollower>> FollowEgressLog(const std::string& id,
                                                               boost::asio::any_io_executor executor) override;
  Result<VmInfo> UpdateNetwork(const std::string& id, const NetworkUpdate& update) override;
  boost::asio::awaitable<Result<SnapshotInfo>> SaveSnapshot(const std::string& id, const std::string& name) override;
  boost::asio::awaitable<Result<std::vector<SnapshotInfo>>> ListSnapshots(const std::string& id) override;
  boost::asio::awaitable<Result<void>> RestoreSnapshot(const std::string& id, const std::string& name) override;
  boost::asio::awaitable<Result<void>> DeleteSnapshot(const std::string& id, const std::string& name) override;
  EventLog& Events() override { return *events_; }
  boost::asio::awaitable<Result<std::string>> MetricsText() override;

 private:
  Supervisor(boost::asio::any_io_executor executor, DaemonConfig config, std::shared_ptr<Jailer> jailer,
             Accel accel, ChannelKind channel,
             std::unique_ptr<StateStore> store, std::string qemu_version);

  // A user's VM by id; unclaimed VMs are not found.
  Result<std::shared_ptr<Vm>> Find(const std::string& id);
  // What a VM is made for, beyond its profile (the VmSpec fields of the same names).
  struct VmPurpose {
    std::string pool;
    bool unclaimed = false;
    std::vector<VmMount> mounts;
    std::optional<UserIds> mount_owner;
    bool ram_becomes_template = false;
    bool hotplug_ports = false;
  };
  // A new VM (network attached, not booted), registered under a fresh id.
  Result<std::shared_ptr<Vm>> MakeVm(const Image& image, int cpus, int memory_mib, const NetworkRequest& network,
                                     VmPurpose purpose);
  // Kills and removes a VM with its files, lease and record; tells its pool.
  boost::asio::awaitable<Result<void>> RemoveVm(std::shared_ptr<Vm> vm);
  NetworkMode DefaultNetworkMode() const;

  // supervisor_observe.cc: what the events and metrics are told. Only VMs
  // handed to a user are told of; pool and golden-snapshot VMs are not.
  // Every change of a VM's state: persisted; its end (stopped, failed) told.
  void OnVmChange(const VmRecord& record);
  void NoteCreated(const Vm& vm);
  // `vm` is running, its create having begun at `began`.
  void NoteStarted(const Vm& vm, std::chrono::steady_clock::time_point began);
  // An exec started in VM `id`; its end is told when the stream finishes.
  void NoteExec(const std::string& id, const std::string& command, ExecStream& exec);
  // A running VM's egress policy changed: the fields `update` gave, as they are now.
  void NotePolicyChanged(const std::string& id, const NetworkUpdate& update);
  // The block I/O of each of `vms` (null: not asked), asked of their QEMUs
  // at once and waited for at most kBlockStatsTimeout; a VM that did not
  // answer in time has no entries.
  boost::asio::awaitable<std::vector<std::vector<BlockIo>>> GatherBlockStats(std::vector<std::shared_ptr<Vm>> vms);
  static constexpr std::chrono::milliseconds kBlockStatsTimeout{2000};

  // supervisor_recover.cc
  // Registers the VM of `record` with `state` (a recovered one: no QEMU).
  std::shared_ptr<Vm> AddRecordedVm(const VmRecord& record, VmState state, std::string reason);
  // Starts adopting the live QEMU of `record`; a step that fails at once
  // leaves the VM failed with the reason.
  void AdoptRecordedVm(const VmRecord& record);
  // Kills QEMUs and removes run and disk dirs of VMs not in `known`.
  void RemoveOrphans(const std::set<std::string>& known);

  // supervisor_snapshots.cc: golden snapshots and pools.
  void MakePools();
  GoldenKey GoldenKeyOf(const std::string& image, int cpus, int memory_mib, NetworkMode network, bool mounts) const;
  // Boots `vm` as `mode` says: a restore of its profile's golden snapshot
  // where one applies, else a cold boot (docs/snapshots.md).
  boost::asio::awaitable<Result<void>> BootVm(Vm& vm, BootMode mode);
  boost::asio::awaitable<Result<std::shared_ptr<Vm>>> BootGoldenVm(const GoldenKey& key);
  boost::asio::awaitable<Result<std::shared_ptr<Vm>>> MakePoolClone(PoolConfig config, NetworkMode network);
  std::shared_ptr<Vm> TakeFromPool(const CreateVmRequest& request);
  VmInfo InfoOf(const Vm& vm) const;
  VmContext MakeContext();
  std::string NewVmId() const;
  std::uint32_t NewGuestCid() const;

  boost::asio::any_io_executor executor_;
  DaemonConfig config_;
  net::EgressPresets presets_;  // what network.presets may name (config_.egress_presets checked by Create)
  Accel accel_;
  ChannelKind channel_;
  ImageStore images_;
  std::shared_ptr<Jailer> jailer_;  // null with `jail: off`
  std::shared_ptr<VmHost> host_;    // every Vm's way to QEMU (through jailer_)
  std::unique_ptr<StateStore> store_;
  // Shared with the callbacks of exec streams, which may outlive a VM.
  std::shared_ptr<EventLog> events_ = std::make_shared<EventLog>();
  std::shared_ptr<Metrics> metrics_ = std::make_shared<Metrics>();
  std::shared_ptr<VmNetwork> network_;
  std::map<std::string, std::shared_ptr<Vm>> vms_;
  std::unique_ptr<GoldenSnapshotBuilder> golden_;  // null when golden snapshots are off
  std::map<std::string, std::unique_ptr<VmPool>> pools_;  // by VmPool::name()
};

}  // namespace agentvm
