// A running VM's egress policy changed live (PATCH /v1/vms/{id}/network):
// the supervisor's entry, the VM's part (its record), the network's part is
// VmNetwork::Update.
#include "common/logging.h"
#include "supervisor/supervisor.h"
#include "supervisor/vm.h"
#include "supervisor/vm_network.h"

namespace agentvm {

Result<void> Vm::UpdateNetwork(const NetworkUpdate& update) {
  if (state_ != VmState::kRunning) return Fail(StateConflict());
  if (!network_) return Fail(ErrorCode::kInvalidArgument, "vm " + spec_.id + " has no network");
  if (auto updated = network_->Update(update); !updated) return Fail(updated.error());
  // Recorded, so a restarted daemon that adopts the VM rebuilds this policy.
  spec_.network = network_->info();
  if (context_.on_change && !removed_) context_.on_change(Record());
  return {};
}

Result<VmInfo> Supervisor::UpdateNetwork(const std::string& id, const NetworkUpdate& update) {
  auto vm = Find(id);
  if (!vm) return Fail(vm.error());
  NetworkUpdate expanded = update;
  if (auto ok = ExpandPresets(presets_, (*vm)->Info().network, expanded); !ok) return Fail(ok.error());
  if (auto updated = (*vm)->UpdateNetwork(expanded); !updated) return Fail(updated.error());
  NotePolicyChanged(id, expanded);
  return InfoOf(**vm);
}

}  // namespace agentvm
