// The shapes of the names a request may carry. Anything else is refused before
// it reaches a path, a QEMU option or a kernel command line.
#pragma once

#include <string_view>

namespace agentvm {

// VM ids: ^[a-z0-9][a-z0-9-]{0,63}$ — safe as a path component, a QEMU
// option value and (later) the seed of a tap name.
bool IsValidVmId(std::string_view id);

// Image names: ^[a-z0-9][a-z0-9._-]{0,63}$, never "." or "..".
bool IsValidImageName(std::string_view name);

}  // namespace agentvm
