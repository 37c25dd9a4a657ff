// A listening unix stream socket made by the daemon and handed to a child
// (QEMU's QMP monitor and agent port, virtiofsd's vhost-user socket). Made
// here rather than by the child, a connect to it succeeds as soon as this
// returns: no polling until the child has started and listens itself.
#pragma once

#include <string>

#include "common/error.h"
#include "common/unique_fd.h"

namespace agentvm {

// Binds a close-on-exec SOCK_STREAM socket to `path` (a stale socket file
// there is replaced) and listens with `backlog`.
Result<UniqueFd> ListenUnix(const std::string& path, int backlog);

// A close-on-exec socket connected to the listener at `path` (which need not
// have accepted yet).
Result<UniqueFd> ConnectUnix(const std::string& path);

}  // namespace agentvm
