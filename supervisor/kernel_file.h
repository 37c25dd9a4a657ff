// Writing a control file of the kernel (a cgroup's, /proc/PID/uid_map):
// the kernel takes each in a single write(), so it is written whole or
// the call fails.
#pragma once

#include <string>

#include "common/error.h"

namespace agentvm {

// `value` written to the existing file `path` in one write(); the error
// names the path and the value.
Result<void> WriteKernelFile(const std::string& path, const std::string& value);

}  // namespace agentvm
