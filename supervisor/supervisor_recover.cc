// Supervisor::Recover: what a starting daemon does with what an earlier one
// left (docs/operations.md, "What survives a restart").
#include <unistd.h>

#include <filesystem>

#include "common/logging.h"
#include "common/spawn.h"
#include "supervisor/adopted_qemu.h"
#include "supervisor/process_identity.h"
#include "supervisor/mount_policy.h"
#include "supervisor/supervisor.h"
#include "supervisor/virtiofsd.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> Log() { return Logger("supervisor"); }

// The running reason of an adopted VM: what a user of it must know.
constexpr char kAdoptedNote[] =
    "adopted by a restarted agentvmd; execs that were streaming when the earlier daemon died were lost";
// Its "adopted" event says the same: which execs were streaming is not
// recorded, so the event cannot count them.
constexpr char kExecsLostNote[] = "execs that were streaming when the earlier daemon died were lost";

// The VM id in a path or argument under "<dir>/vms/<id>", or "".
std::string VmIdUnder(const std::string& text, const std::string& vms_dir) {
  const std::size_t at = text.find(vms_dir);
  if (at == std::string::npos) return "";
  const std::size_t start = at + vms_dir.size();
  const std::size_t end = text.find_first_of(std::string("/,\0", 3), start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

Result<void> Supervisor::Recover() {
  auto records = store_->List();
  if (!records) return Fail(records.error());
  std::vector<VmRecord> adoptable;
  std::set<std::string> known;
  // VMs with mounts are not adopted (their QEMU is killed below), so no
  // virtiofsd of an earlier daemon has anything left to serve. They die
  // with it (PR_SET_PDEATHSIG); this catches any that did not.
  KillLeftoverVirtiofsds((fs::path(config_.run_dir) / "vms").string() + "/");
  for (const VmRecord& record : *records) {
    known.insert(record.id);
    VmState state = VmStateFromName(record.state).value_or(VmState::kFailed);
    std::string reason = record.reason;
    const bool alive = IsRecordedQemu(record.pid, record.qemu_start_time, record.runtime_dir);
    if (alive && state == VmState::kRunning && !record.unclaimed && record.mounts.empty()) {
      adoptable.push_back(record);
      continue;
    }
    if (alive && !record.mounts.empty() && state == VmState::kRunning) {
      reason = "agentvmd restarted: a VM with mounts is not adopted (its virtiofsd died with the earlier daemon)";
      state = VmState::kFailed;
    }
    if (alive) {
      Log()->warn("{}: killing qemu pid {} left by an earlier agentvmd (the VM was {})", record.id, record.pid,
                  record.state);
      KillStranger(record.pid);
    }
    // A daemon that died with its VMs left their jails' cgroups and files.
    if (jailer_) jailer_->RemoveLeftovers(record.id, {record.runtime_dir, record.disk_dir});
    if (record.unclaimed) {
      // Nobody was ever given it: nothing to show, only to clean up.
      Log()->info("{}: removing unclaimed VM left by an earlier agentvmd", record.id);
      std::error_code ec;
      fs::remove_all(record.runtime_dir, ec);
      fs::remove_all(record.disk_dir, ec);
      if (auto released = network_->ReleaseLease(record.id); !released) return Fail(released.error());
      if (auto deleted = store_->Delete(record.id); !deleted) return Fail(deleted.error());
      known.erase(record.id);
      continue;
    }
    if (state != VmState::kStopped && state != VmState::kFailed) {
      reason = alive ? "agentvmd restarted while the VM was " + record.state + "; it was not adopted"
                     : "qemu exited while agentvmd was not running (the VM was " + record.state + ")";
      state = VmState::kFailed;
      events_->Publish("failed", record.id, {{"reason", reason}});
    }
    auto vm = AddRecordedVm(record, state, reason);
    if (auto put = store_->Put(vm->Record()); !put) return Fail(put.error());
  }
  RemoveOrphans(known);
  if (golden_) {
    if (auto cleaned = golden_->RemoveLeftovers(); !cleaned) return Fail(cleaned.error());
  }
  // After the QEMUs not adopted are gone (their taps with them): no tap is
  // ever left without its filter. Adopted VMs' taps keep the bridge.
  const bool keep_bridge = std::any_of(adoptable.begin(), adoptable.end(), [](const VmRecord& record) {
    return NetworkInfoFromRecord(record.network).mode == NetworkMode::kNatFiltered;
  });
  if (auto cleaned = network_->RemoveLeftovers(keep_bridge); !cleaned) {
    return Fail(cleaned.error().Wrap("network leftovers"));
  }
  // A crash between leasing and recording the VM leaves a lease nobody holds.
  auto leases = store_->ListLeases();
  if (!leases) return Fail(leases.error());
  for (const LeaseRecord& lease : *leases) {
    if (known.contains(lease.vm_id)) continue;
    Log()->warn("releasing {} leased to unknown VM {}", lease.address, lease.vm_id);
    if (auto released = store_->DeleteLease(lease.vm_id); !released) return Fail(released.error());
  }
  for (const VmRecord& record : adoptable) AdoptRecordedVm(record);
  if (!vms_.empty()) {
    Log()->info("recovered {} VM record(s) from the state store, adopting {}", vms_.size(), adoptable.size());
  }
  return {};
}

std::shared_ptr<Vm> Supervisor::AddRecordedVm(const VmRecord& record, VmState state, std::string reason) {
  VmSpec spec{.id = record.id,
              .image = Image{.name = record.image},
              .cpus = record.cpus,
              .memory_mib = record.memory_mib,
              .guest_cid = record.guest_cid,
              .paths = VmPaths{record.runtime_dir, record.disk_dir},
              .network = NetworkInfoFromRecord(record.network),
              .pool = record.pool,
              .mounts = MountsFromRecord(record.mounts)};
  auto vm = std::make_shared<Vm>(MakeContext(), std::move(spec), state, std::move(reason), record.created_at);
  vm->LoadRecordedDetails(record);
  vms_[record.id] = vm;
  return vm;
}

void Supervisor::AdoptRecordedVm(const VmRecord& record) {
  auto fail = [&](const Error& error) {
    Log()->error("{}: cannot adopt qemu pid {}: {}", record.id, record.pid, error.message);
    KillStranger(record.pid);
    if (jailer_) jailer_->RemoveLeftovers(record.id, {record.runtime_dir, record.disk_dir});
    auto vm = AddRecordedVm(record, VmState::kFailed, "not adopted after an agentvmd restart: " + error.message);
    if (auto put = store_->Put(vm->Record()); !put) Log()->error("{}: {}", record.id, put.error().message);
    events_->Publish("failed", record.id, {{"reason", vm->Info().reason}});
  };
  std::function<void()> give_back;
  if (jailer_) {
    auto slot = jailer_->AdoptSlot(record.pid);
    if (!slot) return fail(slot.error());
    give_back = [jailer = jailer_, slot = std::shared_ptr<JailSlots::Lease>(std::move(*slot)), record] {
      jailer->RemoveLeftovers(record.id, {record.runtime_dir, record.disk_dir});
    };
  }
  auto qemu = AdoptedQemuProcess::Open(executor_, record.pid, std::move(give_back));
  if (!qemu) return fail(qemu.error());
  auto network = network_->Readopt(record.id, NetworkInfoFromRecord(record.network));
  if (!network) return fail(network.error());
  if (!record.pool.empty()) {
    if (auto pool = pools_.find(record.pool); pool != pools_.end()) pool->second->CountInUse(record.id);
  }
  auto vm = AddRecordedVm(record, VmState::kStarting, "being adopted by a restarted agentvmd");
  Log()->info("{}: adopting qemu pid {}", record.id, record.pid);
  SpawnDetached(
      executor_,
      [vm, qemu = std::move(*qemu), network = std::move(*network), events = events_,
       pid = record.pid]() mutable -> boost::asio::awaitable<void> {
        std::string note = kAdoptedNote;
        auto adopted = co_await vm->Adopt(std::move(qemu), std::move(network), std::move(note));
        if (!adopted) {
          Log()->error("{}", adopted.error().message);  // its "failed" event is told as it fails
          co_return;
        }
        nlohmann::ordered_json fields = {{"pid", pid}, {"execs_lost", kExecsLostNote}};
        events->Publish("adopted", vm->id(), std::move(fields));
      },
      record.id + ": adopt", Log());
}

void Supervisor::RemoveOrphans(const std::set<std::string>& known) {
  const std::string run_vms = (fs::path(config_.run_dir) / "vms").string() + "/";
  for (pid_t pid : ProcessesWithArg(run_vms)) {
    const std::string id = VmIdUnder(ProcessCommandLine(pid), run_vms);
    if (pid == ::getpid() || id.empty() || known.contains(id)) continue;
    Log()->warn("killing orphan process {} of unknown VM {}", pid, id);
    KillStranger(pid);
  }
  for (const fs::path& dir : {fs::path(config_.run_dir) / "vms", fs::path(config_.state_dir) / "vms"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string id = entry.path().filename().string();
      if (known.contains(id)) continue;
      Log()->warn("removing orphan {} (no VM record owns it)", entry.path().string());
      if (jailer_) jailer_->RemoveLeftovers(id, {});
      fs::remove_all(entry.path(), ec);
    }
  }
}

}  // namespace agentvm
