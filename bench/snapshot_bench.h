// Benchmark 5 (issue 4): golden snapshots and the warm pool, through an
// agentvmd that keeps one pool of the benchmarked profile.
//  - Cold boot, restore of the golden snapshot and a warm acquire from the
//    full pool, each POST /v1/vms until its 201, interleaved round by round
//    (cold, restore, warm, cold, ...) so the machine's noise hits all three.
//  - Recycle throughput: for a fixed time, acquire + exec `true` + release in
//    a loop against the pool, as an agent harness would.
//  - For information: how long the one-off golden snapshot took to build.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "bench/stats.h"
#include "common/error.h"

namespace agentvm::bench {

class BenchDaemon;

struct SnapshotBenchOptions {
  int rounds = 5;   // timed rounds of (cold, restore, warm)
  int warmups = 1;  // untimed rounds first
  std::chrono::seconds recycle_duration{60};
  int pool_min_ready = 4;
  int pool_max_total = 8;
  int fill_parallelism = 0;  // 0: the daemon's default (one per two cores)
  std::string memory_templates;  // cow | copy; empty: the daemon's default (cow)
  std::string image = "tiny";
  // When BenchDaemon::Start was called: the golden snapshot's build time is
  // counted from here, as the daemon starts building it when it starts.
  Clock::time_point daemon_started{};
};

// The agentvmd flags that give it the pool the benchmark measures.
std::vector<std::string> SnapshotDaemonFlags(const SnapshotBenchOptions& options);

struct SnapshotBenchResult {
  std::string pool_name;
  double golden_build = 0;  // seconds, daemon start until golden_ready
  double pool_filled = 0;   // seconds, daemon start until the pool first had min_ready ready

  Samples cold;     // POST {"boot":"cold"} -> 201
  Samples restore;  // POST {"boot":"restore"} -> 201, answered by a restore
  Samples warm;     // POST {"boot":"auto"} -> 201 with the pool full, answered from the pool
  Samples restore_ratio;  // restore / cold within each round
  Samples warm_ratio;     // warm / cold within each round
  Samples remove;   // DELETE ?force=true of a cold or restored VM (not counted)
  Samples release;  // POST /release of a pool VM (not counted)
  Samples refill;   // release until the pool is at min_ready again (not counted)
  // The first `exec true` in each VM right after its 201 (not counted): a
  // clone runs in a fresh QEMU whose TCG translation cache is still empty.
  Samples first_exec_cold;
  Samples first_exec_restore;
  Samples first_exec_warm;
  // Creates that came up another way than asked, left out of the samples.
  int restore_fell_back = 0;
  std::string restore_error;  // the last restore_error agentvmd reported
  int warm_not_from_pool = 0;

  double recycle_seconds = 0;  // the loop's actual length
  int recycled = 0;            // acquire + exec + release cycles completed
  int recycle_from_pool = 0;
  int recycle_from_restore = 0;
  int recycle_from_cold = 0;
  Samples recycle_acquire_pool;   // acquires answered from the pool
  Samples recycle_acquire_other;  // acquires that fell back to a restore or boot
  Samples recycle_exec;           // POST /exec of `true`, NDJSON to the exit event
  Samples recycle_release;        // POST /release -> 204
  // The pool's counters at the end of the loop.
  int pool_ready_after = 0;
  int pool_starting_after = 0;
  std::uint64_t pool_replaced = 0;
  std::uint64_t pool_failed = 0;
  std::string pool_last_error;
};

boost::asio::awaitable<Result<SnapshotBenchResult>> RunSnapshotBench(BenchDaemon& daemon,
                                                                     SnapshotBenchOptions options);

// The markdown section for bench/README.md.
std::string RenderSnapshotReport(const SnapshotBenchResult& result, const SnapshotBenchOptions& options);

}  // namespace agentvm::bench
