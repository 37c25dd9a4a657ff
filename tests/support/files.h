// Small file helpers for tests.
#pragma once

#include <filesystem>
#include <string>

namespace agentvm::testing {

// The whole file, byte for byte; empty if it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace agentvm::testing
