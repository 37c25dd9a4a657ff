// Carries out a parsed agentvm command against agentvmd. Internal to the CLI.
#pragma once

#include "cli/api_client.h"
#include "cli/cli.h"
#include "cli/interrupt.h"

namespace agentvm::cli {

int RunCommand(const CliCommand& command, ApiClient& client, const CliContext& context,
               InterruptScope& interrupts);

}  // namespace agentvm::cli
