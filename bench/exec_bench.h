// Benchmarks 2 and 3: the round trip of running /bin/true in a running VM,
// three ways, interleaved round by round so they share the machine's noise:
//  - agentvmd's API: POST /v1/vms/{id}/exec, NDJSON read to the exit event;
//  - our agent directly: GuestChannel::Exec, no daemon, no HTTP;
//  - QEMU's guest agent: guest-exec, then guest-exec-status polled with no
//    pause until "exited" (its best case).
// Alongside, a ping of each agent (ours: ping/pong; qemu-ga: guest-ping) in
// the same VM, to tell transport latency from the cost of running a process.
// The last two run in the SAME VM (booted by hand with both ports); the first
// in a VM agentvmd created from the same image.
#pragma once

#include <filesystem>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include "bench/stats.h"
#include "common/error.h"
#include "supervisor/image_store.h"

namespace agentvm::bench {

class BenchDaemon;

struct ExecBenchOptions {
  int runs = 200;    // timed round trips of each kind
  int warmups = 10;  // untimed round trips of each kind first
  Image image;
  std::filesystem::path hand_root;
};

struct ExecBenchResult {
  Samples api;
  Samples api_user;  // the same with "user": "root" named: passwd lookup, setgroups, setresuid
  Samples api_tty;   // the same with "tty": true: a pseudo-terminal instead of pipes
  Samples direct;
  Samples qga;
  Samples direct_ping;
  Samples qga_ping;
  double qga_status_polls = 0;  // mean guest-exec-status calls per QGA exec
  // Seconds one fork+execve+wait of /bin/true costs inside the guest alone
  // (a busybox sh loop, less the empty loop): the floor every path pays.
  double spawn_floor = 0;
};

boost::asio::awaitable<Result<ExecBenchResult>> RunExecBench(BenchDaemon& daemon, ExecBenchOptions options);

}  // namespace agentvm::bench
