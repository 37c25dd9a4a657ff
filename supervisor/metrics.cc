#include "supervisor/metrics.h"

#include <unistd.h>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "supervisor/process_stats.h"

namespace agentvm {
namespace {

// Boots take 0.2 s (a restore under KVM) to a minute (a cold boot under a
// loaded TCG); execs from milliseconds to hours.
const prometheus::Histogram::BucketBoundaries kBootBuckets = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80};
const prometheus::Histogram::BucketBoundaries kAcquireBuckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1};
const prometheus::Histogram::BucketBoundaries kExecBuckets = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600};

constexpr VmState kStates[] = {VmState::kCreating, VmState::kStarting, VmState::kRunning,
                               VmState::kStopping, VmState::kStopped,  VmState::kFailed};

// Per-VM block and network I/O: counters QEMU and the kernel keep, passed on.
void RenderVmIo(const Metrics::Snapshot& snapshot, prometheus::Registry& now) {
  auto counter = [&](const char* name, const char* help) -> prometheus::Family<prometheus::Counter>& {
    return prometheus::BuildCounter().Name(name).Help(help).Register(now);
  };
  auto& read_bytes = counter("agentvm_vm_block_read_bytes_total", "Bytes a VM's drive read, from QEMU's blockstats");
  auto& written_bytes =
      counter("agentvm_vm_block_written_bytes_total", "Bytes a VM's drive wrote, from QEMU's blockstats");
  auto& read_ops = counter("agentvm_vm_block_read_ops_total", "Read requests a VM's drive completed");
  auto& write_ops = counter("agentvm_vm_block_write_ops_total", "Write requests a VM's drive completed");
  auto& transmit = counter("agentvm_vm_network_transmit_bytes_total", "Bytes a VM sent on its NIC (its tap's rx)");
  auto& receive = counter("agentvm_vm_network_receive_bytes_total", "Bytes a VM received on its NIC (its tap's tx)");
  auto& refused = counter("agentvm_vm_refused_connections_total",
                          "New outbound connections a nat-filtered VM's egress policy refused");
  for (const auto& vm : snapshot.vms) {
    for (const BlockIo& drive : vm.block) {
      const prometheus::Labels labels{{"vm", vm.id}, {"drive", drive.drive}};
      read_bytes.Add(labels).Increment(static_cast<double>(drive.read_bytes));
      written_bytes.Add(labels).Increment(static_cast<double>(drive.written_bytes));
      read_ops.Add(labels).Increment(static_cast<double>(drive.read_ops));
      write_ops.Add(labels).Increment(static_cast<double>(drive.write_ops));
    }
    if (!vm.pid || vm.tap.empty()) continue;
    refused.Add({{"vm", vm.id}}).Increment(static_cast<double>(vm.refused_connections));
    if (auto io = ReadTapIo(vm.tap, snapshot.sys)) {
      transmit.Add({{"vm", vm.id}}).Increment(static_cast<double>(io->transmit_bytes));
      receive.Add({{"vm", vm.id}}).Increment(static_cast<double>(io->receive_bytes));
    }
  }
}

}  // namespace

std::string ExecResultLabel(const Result<protocol::ExecResult>& result) {
  if (!result) return "error";
  if (result->timed_out) return "timeout";
  if (result->signal) return "signal";
  return result->exit_code.value_or(0) == 0 ? "ok" : "nonzero";
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  boots_ = &prometheus::BuildCounter()
                .Name("agentvm_boots_total")
                .Help("VMs brought up for users, by how: cold (kernel boot), restore (golden snapshot), pool")
                .Register(*registry_);
  boot_seconds_ = &prometheus::BuildHistogram()
                       .Name("agentvm_boot_duration_seconds")
                       .Help("From the create request to the VM running, by boot mode")
                       .Register(*registry_);
  pool_acquire_seconds_ = &prometheus::BuildHistogram()
                               .Name("agentvm_pool_acquire_duration_seconds")
                               .Help("Creates served by a warm pool: from the request to the VM handed out")
                               .Register(*registry_);
  execs_ = &prometheus::BuildCounter()
                .Name("agentvm_execs_total")
                .Help("Execs ended, by result: ok, nonzero (exit code), signal, timeout, error")
                .Register(*registry_);
  exec_seconds_ = &prometheus::BuildHistogram()
                       .Name("agentvm_exec_duration_seconds")
                       .Help("How long execs ran, from start to end")
                       .Register(*registry_);
  dns_queries_ = &prometheus::BuildCounter()
                      .Name("agentvm_dns_queries_total")
                      .Help("DNS questions of domain-filtered VMs, by verdict: allowed, refused (never sent "
                            "upstream), refused-type, failed")
                      .Register(*registry_);
  refused_logged_ = &prometheus::BuildCounter()
                         .Name("agentvm_egress_log_refused_total")
                         .Help("Refused connections written to the VMs' egress logs (at most 50/s for all VMs: "
                               "agentvm_vm_refused_connections_total counts every one)")
                         .Register(*registry_)
                         .Add({});
  // Every series a dashboard plots exists from the start, at zero.
  for (const char* verdict : {"allowed", "refused", "refused-type", "failed"}) {
    dns_queries_->Add({{"verdict", verdict}});
  }
  for (const char* mode : {"cold", "restore", "pool"}) boots_->Add({{"mode", mode}});
  for (const char* result : {"ok", "nonzero", "signal", "timeout", "error"}) execs_->Add({{"result", result}});
}

Metrics::~Metrics() = default;

void Metrics::ObserveBoot(const std::string& boot, double seconds) {
  boots_->Add({{"mode", boot}}).Increment();
  boot_seconds_->Add({{"mode", boot}}, kBootBuckets).Observe(seconds);
}

void Metrics::ObservePoolAcquire(double seconds) { pool_acquire_seconds_->Add({}, kAcquireBuckets).Observe(seconds); }

void Metrics::ObserveExec(const Result<protocol::ExecResult>& result, double seconds) {
  execs_->Add({{"result", ExecResultLabel(result)}}).Increment();
  exec_seconds_->Add({}, kExecBuckets).Observe(seconds);
}

void Metrics::ObserveDnsQuestion(const std::string& verdict) { dns_queries_->Add({{"verdict", verdict}}).Increment(); }

void Metrics::ObserveRefusedConnectionLogged() { refused_logged_->Increment(); }

std::string Metrics::Render(const Snapshot& snapshot) const {
  // What is read now goes into a registry of its own, made per scrape.
  prometheus::Registry now;
  auto& vms = prometheus::BuildGauge().Name("agentvm_vms").Help("Users' VMs by state").Register(now);
  for (VmState state : kStates) {
    double count = 0;
    for (const auto& vm : snapshot.vms) count += vm.state == state ? 1 : 0;
    vms.Add({{"state", std::string(VmStateName(state))}}).Set(count);
  }
  auto& pool_vms = prometheus::BuildGauge()
                       .Name("agentvm_pool_vms")
                       .Help("Warm pools' VMs: ready (waiting), starting (being restored), in_use (handed out)")
                       .Register(now);
  for (const PoolInfo& pool : snapshot.pools) {
    pool_vms.Add({{"pool", pool.name}, {"state", "ready"}}).Set(pool.ready);
    pool_vms.Add({{"pool", pool.name}, {"state", "starting"}}).Set(pool.starting);
    pool_vms.Add({{"pool", pool.name}, {"state", "in_use"}}).Set(pool.in_use);
  }
  auto& cpu = prometheus::BuildCounter()
                  .Name("agentvm_vm_cpu_seconds_total")
                  .Help("CPU time (user + system) of each running VM's QEMU")
                  .Register(now);
  auto& rss = prometheus::BuildGauge()
                  .Name("agentvm_vm_resident_memory_bytes")
                  .Help("Resident memory of each running VM's QEMU")
                  .Register(now);
  for (const auto& vm : snapshot.vms) {
    if (!vm.pid) continue;
    auto stats = ReadProcessStats(*vm.pid, snapshot.proc);
    if (!stats) continue;
    cpu.Add({{"vm", vm.id}}).Increment(stats->cpu_seconds);
    rss.Add({{"vm", vm.id}}).Set(static_cast<double>(stats->resident_bytes));
  }
  RenderVmIo(snapshot, now);
  // The names every Prometheus client library uses for its own process.
  const pid_t self = snapshot.daemon_pid != 0 ? snapshot.daemon_pid : ::getpid();
  if (auto stats = ReadProcessStats(self, snapshot.proc)) {
    prometheus::BuildGauge()
        .Name("process_resident_memory_bytes")
        .Help("agentvmd's resident memory")
        .Register(now)
        .Add({})
        .Set(static_cast<double>(stats->resident_bytes));
    prometheus::BuildCounter()
        .Name("process_cpu_seconds_total")
        .Help("agentvmd's CPU time (user + system)")
        .Register(now)
        .Add({})
        .Increment(stats->cpu_seconds);
  }
  if (auto fds = CountOpenFds(self, snapshot.proc)) {
    prometheus::BuildGauge()
        .Name("process_open_fds")
        .Help("agentvmd's open file descriptors")
        .Register(now)
        .Add({})
        .Set(static_cast<double>(*fds));
  }
  auto families = registry_->Collect();
  auto current = now.Collect();
  families.insert(families.end(), current.begin(), current.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace agentvm
