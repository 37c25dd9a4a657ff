// What the Supervisor tells its EventLog and Metrics (docs/operations.md,
// "Events" and "Metrics").
#include <chrono>

#include "common/logging.h"
#include "common/notifier.h"
#include "common/spawn.h"
#include "supervisor/supervisor.h"

namespace agentvm {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("supervisor"); }

std::int64_t MillisSince(std::chrono::steady_clock::time_point began) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();
}

double SecondsSince(std::chrono::steady_clock::time_point began) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
}

}  // namespace

void Supervisor::OnVmChange(const VmRecord& record) {
  if (auto put = store_->Put(record); !put) Log()->error("{}: {}", record.id, put.error().message);
  if (record.unclaimed) return;
  // stopped and failed are final: each VM reaches one of them once.
  if (record.state == VmStateName(VmState::kStopped) || record.state == VmStateName(VmState::kFailed)) {
    events_->Publish(record.state, record.id, {{"reason", record.reason}});
  }
}

void Supervisor::NoteCreated(const Vm& vm) {
  const VmInfo info = vm.Info();
  nlohmann::ordered_json fields = {{"image", info.image},
                                   {"cpus", info.cpus},
                                   {"memory_mib", info.memory_mib},
                                   {"network", NetworkModeName(info.network.mode)}};
  if (!info.pool.empty()) fields["pool"] = info.pool;
  events_->Publish("created", info.id, std::move(fields));
}

void Supervisor::NoteStarted(const Vm& vm, std::chrono::steady_clock::time_point began) {
  const VmInfo info = vm.Info();
  nlohmann::ordered_json fields = {{"boot", info.boot}, {"ms", MillisSince(began)}};
  if (!info.restore_error.empty()) fields["restore_error"] = info.restore_error;
  events_->Publish("started", info.id, std::move(fields));
  metrics_->ObserveBoot(info.boot, SecondsSince(began));
  if (info.boot == "pool") metrics_->ObservePoolAcquire(SecondsSince(began));
}

void Supervisor::NoteExec(const std::string& id, const std::string& command, ExecStream& exec) {
  const std::uint64_t seq = events_->Publish("exec_started", id, {{"command", command}}).seq;
  const auto began = std::chrono::steady_clock::now();
  // The seq of exec_started names the exec in its exec_finished.
  exec.OnFinish([events = std::weak_ptr<EventLog>(events_), metrics = std::weak_ptr<Metrics>(metrics_), id, seq,
                 began](const Result<protocol::ExecResult>& result) {
    if (auto counts = metrics.lock()) counts->ObserveExec(result, SecondsSince(began));
    auto log = events.lock();
    if (!log) return;
    nlohmann::ordered_json fields = {{"exec", seq}};
    if (!result) {
      fields["error"] = result.error().message;
    } else {
      if (result->exit_code) fields["exit_code"] = *result->exit_code;
      if (result->signal) fields["signal"] = *result->signal;
      if (result->timed_out) fields["timed_out"] = true;
    }
    fields["ms"] = MillisSince(began);
    log->Publish("exec_finished", id, std::move(fields));
  });
}

void Supervisor::NotePolicyChanged(const std::string& id, const NetworkUpdate& update) {
  nlohmann::ordered_json fields = nlohmann::ordered_json::object();
  if (update.allow_tcp_ports) fields["allow_tcp_ports"] = *update.allow_tcp_ports;
  if (update.allow_cidrs) fields["allow_cidrs"] = *update.allow_cidrs;
  if (update.allow_domains) fields["allow_domains"] = *update.allow_domains;
  if (update.presets) fields["presets"] = *update.presets;
  if (update.bandwidth_bytes_per_sec) {
    // null: no limit any more.
    fields["bandwidth_bytes_per_sec"] = update.bandwidth_bytes_per_sec->has_value()
                                            ? nlohmann::ordered_json(**update.bandwidth_bytes_per_sec)
                                            : nlohmann::ordered_json(nullptr);
  }
  events_->Publish("policy_changed", id, std::move(fields));
}

boost::asio::awaitable<Result<std::string>> Supervisor::MetricsText() {
  Metrics::Snapshot snapshot;
  std::vector<std::shared_ptr<Vm>> running;  // by the index of their sample
  for (const auto& [id, vm] : vms_) {
    if (vm->unclaimed()) continue;
    const VmInfo info = InfoOf(*vm);
    snapshot.vms.push_back(Metrics::VmSample{.id = id,
                                             .state = info.state,
                                             .pid = info.pid,
                                             .tap = info.network.tap,
                                             .refused_connections = info.network.dropped_connections});
    running.push_back(info.state == VmState::kRunning ? vm : nullptr);
  }
  for (const auto& [name, pool] : pools_) snapshot.pools.push_back(pool->Info());
  auto block = co_await GatherBlockStats(std::move(running));
  for (std::size_t i = 0; i < block.size(); ++i) snapshot.vms[i].block = std::move(block[i]);
  co_return metrics_->Render(snapshot);
}

boost::asio::awaitable<std::vector<std::vector<BlockIo>>> Supervisor::GatherBlockStats(
    std::vector<std::shared_ptr<Vm>> vms) {
  // Every QEMU is asked at once, and the scrape waits for all of them only
  // until one deadline: a hung QMP costs its VM's block series, never the
  // scrape. A late answer lands in `gathering`, which it shares, and is dropped.
  struct Gathering {
    explicit Gathering(boost::asio::any_io_executor executor, std::size_t count) : done(executor), block(count) {}
    Notifier done;
    std::size_t left = 0;
    std::vector<std::vector<BlockIo>> block;
  };
  auto gathering = std::make_shared<Gathering>(executor_, vms.size());
  const auto deadline = std::chrono::steady_clock::now() + kBlockStatsTimeout;
  for (std::size_t i = 0; i < vms.size(); ++i) {
    if (!vms[i]) continue;
    ++gathering->left;
    SpawnDetached(
        executor_,
        [vm = vms[i], gathering, i]() -> boost::asio::awaitable<void> {
          auto stats = co_await vm->QueryBlockStats(kBlockStatsTimeout);
          if (stats) gathering->block[i] = std::move(*stats);
          if (--gathering->left == 0) gathering->done.Notify();
        },
        vms[i]->id() + ": query-blockstats", Log());
  }
  while (gathering->left > 0) {
    if (!co_await gathering->done.WaitUntil(deadline)) break;
  }
  co_return gathering->block;  // a copy: late answers may still write into it
}

}  // namespace agentvm
