// SpawnJailed: starts one program inside the jail a JailPlan describes.
// Everything the child needs is prepared before the clone, so the child only
// makes system calls (no allocation, no locks) until it execs: it joins its
// cgroups, builds its root (a tmpfs of bind mounts) and pivots into it,
// drops every capability, takes the VM's uid/gid, sets no_new_privs and
// rlimits, and execs. A failing step is reported back through a pipe.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "supervisor/jail_plan.h"

namespace agentvm {

struct JailedSpawn {
  std::vector<std::string> argv;  // argv[0] is replaced by the plan's program
  std::string stderr_path;        // appended to; stdout goes to /dev/null
  std::vector<int> pass_fds;      // kept open across exec; every other fd closes
};

struct SpawnedChild {
  pid_t pid = -1;
  int pidfd = -1;  // owned by the caller
};

// Clones the child into new mount, PID and IPC namespaces; it is PID 1 of
// its own. The plan's cgroups must exist (JailResources).
Result<SpawnedChild> SpawnJailed(const JailPlan& plan, const JailedSpawn& spawn);

}  // namespace agentvm
