// The shape of a VM's mounts (vm_types.h VmMount), checked the same way by
// the API's request validation and by the daemon. Pure; what the host
// allows is mount_policy.h's.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "supervisor/vm_types.h"

namespace agentvm {

// At most kMaxMounts; sources and targets absolute, without "." or ".."
// components or control characters; targets not "/" and not repeated.
Result<void> ValidateMounts(const std::vector<VmMount>& mounts);

// `target` without repeated or trailing slashes ("/work//x/" -> "/work/x").
std::string NormalMountTarget(const std::string& target);

}  // namespace agentvm
