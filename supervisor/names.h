// The shapes of the names a request may carry, for the API, the image store,
// the config and the CLI alike. Anything else is refused before it reaches a
// path, a QEMU option or a kernel command line.
#pragma once

#include <string_view>

#include "common/error.h"

namespace agentvm {

// VM ids: ^[a-z0-9][a-z0-9-]{0,63}$ — safe as a path component, a QEMU
// option value and the seed of a tap name.
bool IsValidVmId(std::string_view id);

// Image names: ^[a-z0-9][a-z0-9._-]{0,63}$, never "." or "..".
bool IsValidImageName(std::string_view name);

// Snapshot names: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-', and
// not all digits: QEMU looks a tag up as a snapshot *id* first, so loading
// "1" could bring back whichever snapshot has id 1.
bool IsValidSnapshotName(std::string_view name);

// The same rules as kInvalidArgument errors that quote the name and say
// what is expected ("invalid VM id \"x\": expected ...").
Result<void> ValidateVmId(std::string_view id);
Result<void> ValidateImageName(std::string_view name);
Result<void> ValidateSnapshotName(std::string_view name);

}  // namespace agentvm
