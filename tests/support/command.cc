#include "tests/support/command.h"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>
#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace agentvm::testing {
namespace bp = boost::process;

namespace {

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

bool WaitWithTimeout(bp::child& child, std::chrono::milliseconds timeout) {
  // Not child.wait_for(): in Boost 1.74 it can sleep out the whole timeout
  // after the child has already exited.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::error_code ec;
  while (child.running(ec)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  child.wait(ec);  // reaps; running() has recorded the exit code
  return true;
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                         const std::map<std::string, std::string>& env) {
  CommandResult result;
  TempDir capture("avm-cmd");
  const auto out = capture.path() / "out";
  const auto err = capture.path() / "err";
  boost::filesystem::path program = argv.at(0);
  if (argv[0].find('/') == std::string::npos) program = bp::search_path(argv[0]);
  bp::environment child_env = boost::this_process::environment();
  for (const auto& [key, value] : env) child_env[key] = value;

  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  bp::child child(bp::exe = program, bp::args = std::vector<std::string>(argv.begin() + 1, argv.end()),
                  bp::std_in < bp::null, bp::std_out > out.string(), bp::std_err > err.string(),
                  bp::env = child_env, ec);
  if (ec) {
    result.err = "cannot start " + argv[0] + ": " + ec.message();
    return result;
  }
  if (!WaitWithTimeout(child, timeout)) {
    child.terminate(ec);
    result.err = "timed out after " + std::to_string(timeout.count()) + "s\n";
  } else {
    result.exit_code = child.exit_code();
  }
  result.elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  result.out = Slurp(out);
  result.err += Slurp(err);
  return result;
}

std::string BinPath(const std::string& name) { return std::string(AGENTVM_BIN_DIR) + "/" + name; }

std::string ImageDir() {
  const char* dir = std::getenv("AGENTVM_TEST_IMAGE_DIR");
  std::string image_dir = dir && *dir ? dir : "/var/lib/agentvm/images";
  EXPECT_TRUE(std::filesystem::exists(image_dir + "/tiny/image.json"))
      << "the tiny image is missing from " << image_dir << ": run scripts/build-image tiny --out " << image_dir;
  return image_dir;
}

int CountProcessesWithArg(const std::string& needle) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = Slurp(entry.path() / "cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos && name != std::to_string(::getpid())) ++count;
  }
  return count;
}

bool ProcessWithArgExists(const std::string& needle) { return CountProcessesWithArg(needle) > 0; }

}  // namespace agentvm::testing
