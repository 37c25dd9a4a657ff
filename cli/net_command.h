// `agentvm net ID [--allow-domain N] [--deny-domain N] [--allow-port P]
// [--deny-port P] [--allow-cidr C] [--deny-cidr C] [--bandwidth R |
// --no-bandwidth]`: changes a running VM's egress policy relative to what it
// is now. The CLI reads the VM's policy, applies the flags to it and sends
// only the lists it changed (PATCH /v1/vms/{id}/network), then prints the
// policy agentvmd answers with. Without flags it prints the policy.
#pragma once

#include <string>

#include "cli/cli.h"
#include "cli/cli_args.h"
#include "supervisor/network_update.h"
#include "supervisor/vm_types.h"

namespace agentvm::cli {

class ApiClient;

// The update that turns `current` into what `change` asks for: a list is
// sent whole, and only when the flags change it. Pure.
NetworkUpdate PlanNetworkUpdate(const NetworkInfo& current, const NetChange& change);

// The policy part of a VM's network, one line per field.
std::string FormatEgressPolicy(const NetworkInfo& network);

int Net(const CliCommand& command, ApiClient& client, const CliContext& context);

}  // namespace agentvm::cli
