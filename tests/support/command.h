#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace boost::process {
class child;
}

namespace agentvm::testing {

// Waits for `child` to exit; false if `timeout` passed first.
bool WaitWithTimeout(boost::process::child& child, std::chrono::milliseconds timeout);

struct CommandResult {
  int exit_code = -1;   // -1: killed by the timeout or a signal
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

// Runs argv (argv[0] looked up in PATH unless it has a '/') to completion,
// capturing stdout and stderr; kills it after `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::seconds timeout = std::chrono::seconds(120),
                         const std::map<std::string, std::string>& env = {});

// Path of one of our binaries in build/bin.
std::string BinPath(const std::string& name);

// The directory holding the built `tiny` image: $AGENTVM_TEST_IMAGE_DIR, else
// /var/lib/agentvm/images. Fails the calling test (does not skip) if the
// image is missing: the vm tier must run in CI.
std::string ImageDir();

// True when a process whose command line contains `needle` exists.
bool ProcessWithArgExists(const std::string& needle);
// How many processes (other than this one) have `needle` in their command line.
int CountProcessesWithArg(const std::string& needle);

}  // namespace agentvm::testing
