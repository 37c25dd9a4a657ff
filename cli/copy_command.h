// agentvm cp: files and directory trees into and out of a VM, streamed.
// Internal to the CLI.
#pragma once

#include "cli/api_client.h"
#include "cli/cli.h"

namespace agentvm::cli {

Result<void> RunCopy(const CopySpec& copy, ApiClient& client, const CliContext& context);

}  // namespace agentvm::cli
