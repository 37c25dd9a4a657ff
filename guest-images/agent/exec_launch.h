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
#include "protocol/messages.h"

namespace agentvm::guest {

// PATH every exec starts with; the request's env may replace it.
inline constexpr std::string_view kBasePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// TERM of a tty exec whose request sets none.
inline constexpr std::string_view kDefaultTerm = "xterm-256color";

// The agent's ends of a started program's stdio. With a tty all three are
// the terminal's master side (stderr is then empty: it is in the output).
// stdin_fd is empty when the program's stdin is /dev/null (no stdin was
// sent and none will be).
struct LaunchedExec {
  pid_t pid = -1;
  UniqueFd stdin_fd;
  UniqueFd stdout_fd;
  UniqueFd stderr_fd;
  UniqueFd terminal;  // tty only: the master, for resizes
  // Pipes only: the write ends of stdout and stderr. While the agent holds
  // them the pipes never report end-of-file, so a program's exit wakes the
  // agent once (its pidfd) instead of once per pipe and once more for the
  // exit; ExecSession closes them when it no longer needs that.
  UniqueFd stdout_writer;
  UniqueFd stderr_writer;
};

// Errors read like "exec nope: No such file or directory", "chdir /x: ...",
// "user \"bob\": no such user"; nothing is left running after one.
AgentResult<LaunchedExec> LaunchExec(const protocol::ExecStart& start, const ExecCgroup* cgroup,
                                     const UserDatabase& users = {});

}  // namespace agentvm::guest
