// The agent's logging: one line per call on stderr, which the guest's init
// connects to the VM console (the host keeps it in the console log). No
// spdlog: the agent is a small static binary.
#pragma once

#include <string_view>

namespace agentvm::guest {

void SetVerboseLogging(bool verbose);
bool VerboseLogging();

void LogInfo(std::string_view message);
void LogWarn(std::string_view message);
void LogDebug(std::string_view message);  // only with --verbose

}  // namespace agentvm::guest
