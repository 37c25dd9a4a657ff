// Benchmark 1: create-to-agent-ready through agentvmd (POST /v1/vms until its
// 201) against the same QEMU command run by hand to the same point
// (ManualVm), interleaved A B A B ... in one run.
#pragma once

#include <filesystem>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include "bench/stats.h"
#include "common/error.h"
#include "supervisor/image_store.h"

namespace agentvm::bench {

class BenchDaemon;

struct BootBenchOptions {
  int runs = 5;     // timed boots of each kind
  int warmups = 1;  // untimed boots of each kind first (page cache, first-use paths)
  Image image;
  std::filesystem::path hand_root;  // ManualVm's run/ and state/
};

struct BootBenchResult {
  Samples daemon_create;  // POST /v1/vms -> 201
  Samples daemon_delete;  // DELETE /v1/vms/{id}?force=true -> 204
  Samples hand_total;     // overlay + launch + first pong
  Samples hand_overlay;
  Samples hand_connect;
  Samples hand_ready;
  // agentvmd / by hand of each adjacent pair: drift in the machine's load
  // between pairs cancels out.
  Samples pair_ratio;
};

boost::asio::awaitable<Result<BootBenchResult>> RunBootBench(BenchDaemon& daemon, BootBenchOptions options);

// The JSON "id" of a VM object agentvmd returned.
Result<std::string> VmIdFromReply(const std::string& body);

}  // namespace agentvm::bench
