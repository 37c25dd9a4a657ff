// Metrics: agentvmd's Prometheus metrics (docs/operations.md, "Metrics"),
// rendered in the text exposition format by prometheus-cpp (Debian's
// prometheus-cpp-dev; only its core library: the daemon serves the text on
// its own API socket, so prometheus-cpp's civetweb exposer is not used).
//
// Counters and histograms live here and move as things happen (a boot, a
// pool hand-out, an exec ending). What is a state rather than an event (VMs
// by state, pools, per-VM CPU and memory, the daemon's own memory and fds)
// is read at scrape time from a Snapshot the Supervisor fills, so no gauge
// of a removed VM lingers. Per-VM I/O: the Supervisor asks QEMU for block
// stats (bounded in time) into the Snapshot; the taps' counters are read here.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "protocol/exec_types.h"
#include "supervisor/vm_io_stats.h"
#include "supervisor/vm_types.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace agentvm {

class Metrics {
 public:
  struct VmSample {
    std::string id;
    VmState state = VmState::kCreating;
    std::optional<int> pid;  // QEMU's, while it runs
    std::string tap;         // its NIC's tap on the host, if it has one
    // New outbound connections its egress policy refused (the firewall's
    // counter, as `inspect` shows it: dropped_connections).
    std::uint64_t refused_connections = 0;
    // Its drives' counters; empty when QEMU did not answer in time.
    std::vector<BlockIo> block;
  };
  struct Snapshot {
    std::vector<VmSample> vms;  // the users' VMs (not pool or golden ones)
    std::vector<PoolInfo> pools;
    std::string proc = "/proc";  // procfs root (tests use a fake one)
    std::string sys = "/sys";    // sysfs root, for the taps' counters (likewise)
    pid_t daemon_pid = 0;        // 0: this process
  };

  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A VM came up for a user: `boot` is "cold", "restore" or "pool".
  void ObserveBoot(const std::string& boot, double seconds);
  // A create was served by a warm pool's ready VM.
  void ObservePoolAcquire(double seconds);
  // An exec ended: by its result ("ok", "nonzero", "signal", "timeout",
  // "error"), with how long it ran.
  void ObserveExec(const Result<protocol::ExecResult>& result, double seconds);
  // A domain-filtered VM's DNS question got `verdict` (netsetup/dns_policy.h).
  void ObserveDnsQuestion(const std::string& verdict);
  // A refused connection went into a VM's egress log.
  void ObserveRefusedConnectionLogged();

  // Every metric, in the text exposition format (version 0.0.4).
  std::string Render(const Snapshot& snapshot) const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* boots_;
  prometheus::Family<prometheus::Histogram>* boot_seconds_;
  prometheus::Family<prometheus::Histogram>* pool_acquire_seconds_;
  prometheus::Family<prometheus::Counter>* execs_;
  prometheus::Family<prometheus::Histogram>* exec_seconds_;
  prometheus::Family<prometheus::Counter>* dns_queries_;
  prometheus::Counter* refused_logged_;
};

// The "result" label of an exec's end.
std::string ExecResultLabel(const Result<protocol::ExecResult>& result);

}  // namespace agentvm
