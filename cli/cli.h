// The agentvm command-line client: entry points. main() is RunCli(argc, argv).
#pragma once

#include <string>
#include <vector>

#include "cli/cli_args.h"

namespace agentvm::cli {

// Where a run of the CLI reads and writes, so tests can run it in-process.
struct CliContext {
  std::string env_socket;  // $AGENTVM_SOCKET, empty if unset
  EnvLookup lookup_env;    // for "--env NAME"; null means nothing is set
  int in_fd = 0;
  int out_fd = 1;
  int err_fd = 2;
  // Install SIGINT/SIGTERM/SIGHUP handlers while run/exec wait for output
  // (Ctrl-C then destroys run's VM).
  bool handle_signals = false;
};

// `args` excludes the program name. Returns the process exit status:
//   run, exec: the command's status (exit code, 128+signal, 124 on timeout),
//              130 when interrupted, 125 when agentvm itself failed;
//   others:    0, or 1 on failure; 2 for usage errors everywhere else.
int RunCli(const std::vector<std::string>& args, const CliContext& context);

// The real process: the environment, fds 0-2, signal handling, SIGPIPE
// ignored (a closed stdout is noticed as a write error instead).
int RunCli(int argc, char** argv);

}  // namespace agentvm::cli
