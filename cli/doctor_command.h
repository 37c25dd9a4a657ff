// `agentvm doctor`: runs `agentvmd --doctor`, which checks the host with the
// daemon's own probes and config (supervisor/doctor.h), and relays its
// report and exit status. The CLI itself knows nothing of the host.
#pragma once

#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_args.h"

namespace agentvm::cli {

// agentvmd's argv: the agentvmd beside `self_exe` (the running agentvm) when
// there is one, else "agentvmd" from PATH; then --doctor and the options.
std::vector<std::string> DoctorArgv(const CliCommand& command, const std::string& self_exe);

int Doctor(const CliCommand& command, const CliContext& context);

}  // namespace agentvm::cli
