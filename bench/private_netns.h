// Runs a benchmark body in a child process in a network namespace of its
// own: everything it builds (bridges, nftables tables) goes with the child,
// and the host's own links and tables are never touched. Needs root.
#pragma once

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace agentvm::bench {

// `run` returns the exit code; so does this (1 if the child died otherwise).
template <class Run>
int RunInPrivateNetns(const std::string& what, Run&& run) {
  std::cout << std::flush;
  const pid_t child = ::fork();
  if (child < 0) {
    std::perror((what + ": fork").c_str());
    return 1;
  }
  if (child == 0) {
    if (::unshare(CLONE_NEWNET) != 0) {
      std::perror((what + ": unshare(CLONE_NEWNET) (needs root)").c_str());
      std::_Exit(2);
    }
    const int code = run();
    std::cout << std::flush;
    std::_Exit(code);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace agentvm::bench
