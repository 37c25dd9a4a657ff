// LaunchExec: starts one exec's program as its request says: as which user
// (credentials, groups, HOME, SHELL, ...), with which environment and
// working directory, on pipes or on a pseudo-terminal, in its own session
// and, when given one, its own cgroup.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "guest-images/agent/exec_cgroups.h"
#include "guest-images/agent/file_ops.h"
#include "common/unique_fd.h"
#include "guest-images/agent/users.h"
#include "protocol/exec_types.h"

namespace agentvm::guest {

// PATH every exec starts with; the request's env may replace it.
inline constexpr std::string_view kBasePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// TERM of a tty exec whose request sets none.
inline constexpr std::string_view kDefaultTerm = "xterm-256color";

// The agent's ends of a started program's stdio. With a tty all three are
// the terminal's master side (stderr is then empty: it is in the output).
struct LaunchedExec {
  pid_t pid = -1;
  UniqueFd stdin_fd;
  UniqueFd stdout_fd;
  UniqueFd stderr_fd;
  UniqueFd terminal;  // tty only: the master, for resizes
};

// Errors read like "exec nope: No such file or directory", "chdir /x: ...",
// "user \"bob\": no such user"; nothing is left running after one.
AgentResult<LaunchedExec> LaunchExec(const protocol::ExecRequest& request, const ExecCgroup* cgroup,
                                     const UserDatabase& users = {});

}  // namespace agentvm::guest
