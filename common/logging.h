// One spdlog logger per module ("qmp", "vm", "api", ...), created on first use
// and sharing one sink, so every line says which module wrote it.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace agentvm {

std::shared_ptr<spdlog::logger> Logger(const std::string& module);

// Sets the level of every module logger ("debug", "info", "warn", ...).
// Returns false for an unknown level name.
bool SetLogLevel(const std::string& level);

}  // namespace agentvm
