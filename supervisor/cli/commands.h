// Carries out a parsed agentvm command against agentvmd. Internal to the CLI.
#pragma once

#include "supervisor/cli/api_client.h"
#include "supervisor/cli/cli.h"
#include "supervisor/cli/interrupt.h"

namespace agentvm::cli {

int RunCommand(const CliCommand& command, ApiClient& client, const CliContext& context,
               InterruptScope& interrupts);

}  // namespace agentvm::cli
