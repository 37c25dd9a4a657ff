// Spawn: starts a program the way an exec needs it, in one clone3(): its
// own session, stdio from given fds, optionally a controlling terminal, its
// own cgroup, another user's credentials and working directory. posix_spawn()
// cannot switch users or take a terminal, and fork() would copy the page
// tables of the agent (expensive under TCG), so the child shares the agent's
// memory (CLONE_VM|CLONE_VFORK) on a stack of its own until it execs, and
// does nothing but system calls on data prepared here. It is born in its
// cgroup (CLONE_INTO_CGROUP): moving a running process there instead costs
// the kernel an RCU grace period, a few hundred microseconds under TCG.
#pragma once

#include <sys/types.h>

#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace agentvm::guest {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

struct SpawnPlan {
  // Paths to try for the program, in order (a PATH search done already);
  // like execvpe, a missing candidate moves on to the next one.
  std::vector<std::string> candidates;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "KEY=value"
  std::string cwd;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // stdin is a terminal to become the session's controlling terminal.
  bool controlling_terminal = false;
  std::optional<Credentials> credentials;  // nullopt: stay root
  // The directory of the cgroup to start in; -1: the agent's. Without
  // clone3() (or where this file has no clone3 for the CPU) the child moves
  // itself there before it execs.
  int cgroup_fd = -1;
};

// Which step of the child's setup failed, and with which errno.
struct SpawnFailure {
  enum class Step { kSetup, kCgroup, kCredentials, kChdir, kExec } step = Step::kSetup;
  int err = 0;
};

// The child's pid once it has exec'd; or what failed (nothing left running).
std::expected<pid_t, SpawnFailure> Spawn(const SpawnPlan& plan);

}  // namespace agentvm::guest
