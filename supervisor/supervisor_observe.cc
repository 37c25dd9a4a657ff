// What the Supervisor tells its EventLog and Metrics (docs/operations.md,
// "Events" and "Metrics").
#include <chrono>

#include "common/logging.h"
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

Result<std::string> Supervisor::MetricsText() {
  Metrics::Snapshot snapshot;
  for (const auto& [id, vm] : vms_) {
    if (vm->unclaimed()) continue;
    const VmInfo info = vm->Info();
    snapshot.vms.push_back(Metrics::VmSample{.id = id, .state = info.state, .pid = info.pid});
  }
  for (const auto& [name, pool] : pools_) snapshot.pools.push_back(pool->Info());
  return metrics_->Render(snapshot);
}

}  // namespace agentvm
