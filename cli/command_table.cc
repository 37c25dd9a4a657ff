#include "cli/command_table.h"

#include <cstdlib>

namespace agentvm::cli {
namespace {

constexpr CommandInfo kCommands[] = {
    {"run", CommandKind::kRun, "get a VM, run a command in it, release the VM", true},
    {"create", CommandKind::kCreate, "get a VM and print its id"},
    {"ls", CommandKind::kList, "list VMs"},
    {"list", CommandKind::kList, ""},
    {"inspect", CommandKind::kInspect, "show one VM as JSON"},
    {"exec", CommandKind::kExec, "run a command in a running VM", true},
    {"shell", CommandKind::kShell, "open a login shell in a running VM", true},
    {"cp", CommandKind::kCopy, "copy a file or directory into or out of a VM"},
    {"logs", CommandKind::kLogs, "show a VM's console"},
    {"stop", CommandKind::kStop, "stop VMs"},
    {"rm", CommandKind::kRemove, "remove VMs"},
    {"release", CommandKind::kRelease, "hand VMs back (a pooled VM is recycled)"},
    {"pools", CommandKind::kPools, "show the warm pools"},
    {"presets", CommandKind::kPresets, "list the egress presets --preset may name"},
    {"egress", CommandKind::kEgress, "show what a VM asked the resolver (the egress log)"},
    {"net", CommandKind::kNet, "change a running VM's egress policy (names, ports, subnets, bandwidth)"},
    {"snapshot", CommandKind::kSnapshot, "save, list, restore or delete a VM's named snapshots"},
    {"events", CommandKind::kEvents, "show what happened to the VMs (-f: as it happens)"},
    {"doctor", CommandKind::kDoctor, "check whether this host can run agentvmd, and what to fix"},
    {"help", CommandKind::kHelp, ""},
};

}  // namespace

std::span<const CommandInfo> Commands() { return kCommands; }

const CommandInfo* FindCommand(std::string_view name) {
  for (const CommandInfo& command : kCommands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

const CommandInfo& CommandOf(CommandKind kind) {
  // The first row of a kind is its main name; aliases follow it.
  for (const CommandInfo& command : kCommands) {
    if (command.kind == kind) return command;
  }
  std::abort();  // every CommandKind has a row
}

}  // namespace agentvm::cli
