#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

namespace boost::process {
class child;
}

namespace agentvm::testing {

struct DaemonOptions {
  std::string image_dir;             // default: ImageDir()
  std::string netns;                 // run inside this network namespace
  std::vector<std::string> extra_args;
  // Off unless a test is about them: with them on, a first create builds a
  // golden snapshot in the background, one more boot than the test needs.
  bool golden_snapshots = false;
};

// A real agentvmd with its own socket, state and run directories under a
// temp dir. The destructor sends SIGTERM and waits for a clean exit (and
// records a test failure if it has to SIGKILL), then removes the dirs.
class Daemon {
 public:
  explicit Daemon(DaemonOptions options = {});
  ~Daemon();

  const std::string& socket() const { return socket_; }
  std::string state_dir() const { return (root_.path() / "state").string(); }
  std::string run_dir() const { return (root_.path() / "run").string(); }
  std::string root() const { return root_.str(); }
  bool running() const;
  // The most memory agentvmd has held so far (VmHWM), in KiB; -1 if unknown.
  long PeakRssKib() const;

  // `agentvm --socket <socket> args...`
  CommandResult Cli(const std::vector<std::string>& args,
                    std::chrono::seconds timeout = std::chrono::seconds(180)) const;
  // `agentvm create args...`: the new VM's id ("" and a test failure, with
  // the daemon's log, when it fails).
  std::string CreateVm(const std::vector<std::string>& args = {}) const;
  // `curl` over the unix socket: {status code, body}.
  std::pair<int, std::string> Http(const std::string& method, const std::string& target,
                                   const std::string& body = "") const;
  // What agentvmd logged so far.
  std::string Log() const;
  // GET /v1/vms/{id}: the VM's JSON (a test failure unless 200).
  nlohmann::json Inspect(const std::string& id) const;
  // Inspect() until the VM leaves "starting" (a boot or an adoption after a
  // restart done or failed), for at most two minutes.
  nlohmann::json WaitSettled(const std::string& id) const;
  // The committed golden snapshot's directory under the state dir, once
  // there is one (a rebuild may be under way); empty, and a test failure
  // with the log, if none is there within `limit`.
  std::filesystem::path GoldenSnapshotDir(std::chrono::seconds limit) const;

  // SIGKILLs agentvmd (its QEMUs, taps and rules stay behind, as after a
  // crash) and starts a new one on the same directories and flags.
  void CrashAndRestart();
  // The two halves, for a test that changes things while no daemon runs.
  void Crash();
  void Restart();
  // SIGTERM, then waits (up to 60 s) for agentvmd to exit 0.
  void Terminate();

 private:
  void Start();

  std::vector<std::string> args_;
  int starts_ = 0;
  TempDir root_;
  std::string socket_;
  std::unique_ptr<boost::process::child> child_;
};

// Flips the bits of one byte of `file` (made writable first): damage only a
// checksum can catch.
void FlipByteAt(const std::filesystem::path& file, std::uintmax_t offset);

}  // namespace agentvm::testing
