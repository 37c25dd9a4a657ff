// BenchDaemon: a real agentvmd started for a benchmark in its own directories
// under the work dir, always with TCG and with isolated networking (no NIC:
// the benchmarks run in the host's network namespace, whose links, routes and
// nftables they must never touch). The destructor stops it with SIGTERM (it
// stops its VMs itself), or kills it and its QEMUs if it does not exit.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "supervisor/child_process.h"

namespace agentvm::bench {

struct BenchDaemonOptions {
  std::string binary;            // agentvmd
  std::string image_dir;
  std::filesystem::path root;    // socket, state/, run/ and agentvmd.log go here
  std::vector<std::string> extra_args;  // more agentvmd flags, e.g. --pool ...
  // Where the destructor copies agentvmd.log once the daemon has exited
  // (the work dir is removed afterwards); empty: nowhere.
  std::filesystem::path save_log_to;
};

class BenchDaemon {
 public:
  // Launches agentvmd and waits until its API answers.
  static boost::asio::awaitable<Result<std::unique_ptr<BenchDaemon>>> Start(BenchDaemonOptions options);
  ~BenchDaemon();
  BenchDaemon(const BenchDaemon&) = delete;
  BenchDaemon& operator=(const BenchDaemon&) = delete;

  const std::string& socket() const { return socket_; }
  std::filesystem::path run_dir() const { return options_.root / "run"; }
  std::filesystem::path log_path() const { return options_.root / "agentvmd.log"; }
  // The last `lines` lines of agentvmd.log, to show why a benchmark failed.
  std::string LogTail(int lines) const;

 private:
  explicit BenchDaemon(BenchDaemonOptions options);

  BenchDaemonOptions options_;
  std::string socket_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace agentvm::bench
