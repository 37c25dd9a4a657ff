// Metrics: the exposition text names what docs/operations.md lists, the
// counters move with what is observed, and per-VM and daemon figures come
// from (a fake) /proc.
#include "supervisor/metrics.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>


namespace agentvm {
namespace {

// The value of the sample line that starts with `series` + " ", or -1.
double Sample(const std::string& text, const std::string& series) {
  const std::string prefix = series + " ";
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (text.compare(at, prefix.size(), prefix) == 0) return std::stod(text.substr(at + prefix.size(), end - at));
    at = end + 1;
  }
  return -1;
}

// A fake procfs root, removed at the end.
struct FakeProc {
  FakeProc() {
    char pattern[] = "/tmp/agentvm-proc-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~FakeProc() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

// <root>/<pid>/{stat,status,fd/} as procfs has them.
void FakeProcess(const std::filesystem::path& root, int pid, unsigned long utime, unsigned long stime,
                 unsigned long rss_kib, int fds) {
  const auto dir = root / std::to_string(pid);
  std::filesystem::create_directories(dir / "fd");
  std::ofstream(dir / "stat") << pid << " (qemu-system-x86) S 1 1 1 0 -1 0 0 0 0 0 " << utime << " " << stime
                              << " 0 0 20 0 1 0 100 0 0\n";
  std::ofstream(dir / "status") << "Name:\tqemu\nVmRSS:\t" << rss_kib << " kB\n";
  for (int i = 0; i < fds; ++i) std::ofstream(dir / "fd" / std::to_string(i)) << "";
}

TEST(MetricsTest, CountersStartAtZeroAndMoveWithWhatIsObserved) {
  Metrics metrics;
  Metrics::Snapshot empty;
  std::string before = metrics.Render(empty);
  EXPECT_EQ(Sample(before, "agentvm_boots_total{mode=\"cold\"}"), 0);
  EXPECT_EQ(Sample(before, "agentvm_execs_total{result=\"ok\"}"), 0);

  metrics.ObserveBoot("cold", 3.2);
  metrics.ObserveBoot("pool", 0.01);
  metrics.ObservePoolAcquire(0.01);
  metrics.ObserveExec(protocol::ExecResult{.exit_code = 0}, 0.2);
  metrics.ObserveExec(protocol::ExecResult{.exit_code = 2}, 0.3);
  metrics.ObserveExec(protocol::ExecResult{.signal = 9, .timed_out = true}, 10);
  metrics.ObserveExec(Fail(ErrorCode::kUnavailable, "guest gone"), 1);
  std::string after = metrics.Render(empty);
  EXPECT_EQ(Sample(after, "agentvm_boots_total{mode=\"cold\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_boots_total{mode=\"pool\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_boot_duration_seconds_count{mode=\"cold\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_boot_duration_seconds_bucket{mode=\"cold\",le=\"5\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_boot_duration_seconds_bucket{mode=\"cold\",le=\"2.5\"}"), 0);
  EXPECT_EQ(Sample(after, "agentvm_pool_acquire_duration_seconds_count"), 1);
  EXPECT_EQ(Sample(after, "agentvm_execs_total{result=\"ok\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_execs_total{result=\"nonzero\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_execs_total{result=\"timeout\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_execs_total{result=\"error\"}"), 1);
  EXPECT_EQ(Sample(after, "agentvm_exec_duration_seconds_count"), 4);
  EXPECT_NE(after.find("# TYPE agentvm_boot_duration_seconds histogram"), std::string::npos);
}

TEST(MetricsTest, DnsQuestionsAreCountedByVerdict) {
  Metrics metrics;
  Metrics::Snapshot empty;
  EXPECT_EQ(Sample(metrics.Render(empty), "agentvm_dns_queries_total{verdict=\"refused\"}"), 0);
  metrics.ObserveDnsQuestion("refused");
  metrics.ObserveDnsQuestion("refused");
  metrics.ObserveDnsQuestion("allowed");
  const std::string text = metrics.Render(empty);
  EXPECT_EQ(Sample(text, "agentvm_dns_queries_total{verdict=\"refused\"}"), 2);
  EXPECT_EQ(Sample(text, "agentvm_dns_queries_total{verdict=\"allowed\"}"), 1);
  EXPECT_EQ(Sample(text, "agentvm_dns_queries_total{verdict=\"failed\"}"), 0);
}

TEST(MetricsTest, RefusedConnectionsLoggedAreCounted) {
  Metrics metrics;
  Metrics::Snapshot empty;
  EXPECT_EQ(Sample(metrics.Render(empty), "agentvm_egress_log_refused_total"), 0);
  metrics.ObserveRefusedConnectionLogged();
  metrics.ObserveRefusedConnectionLogged();
  EXPECT_EQ(Sample(metrics.Render(empty), "agentvm_egress_log_refused_total"), 2);
}

TEST(MetricsTest, StateIsReadAtScrapeTime) {
  FakeProc proc;
  FakeProcess(proc.path, 4242, /*utime=*/250, /*stime=*/50, /*rss_kib=*/2048, /*fds=*/0);
  FakeProcess(proc.path, 77, 100, 100, 1024, 5);
  Metrics metrics;
  Metrics::Snapshot snapshot;
  snapshot.proc = proc.path.string();
  snapshot.daemon_pid = 77;
  snapshot.vms = {{.id = "vm-a", .state = VmState::kRunning, .pid = 4242},
                  {.id = "vm-b", .state = VmState::kStopped, .pid = std::nullopt},
                  {.id = "vm-c", .state = VmState::kRunning, .pid = 999}};  // gone: no figures
  snapshot.pools = {PoolInfo{.name = "tiny-1c-256m-isolated", .ready = 2, .starting = 1, .in_use = 3}};
  std::string text = metrics.Render(snapshot);
  EXPECT_EQ(Sample(text, "agentvm_vms{state=\"running\"}"), 2);
  EXPECT_EQ(Sample(text, "agentvm_vms{state=\"stopped\"}"), 1);
  EXPECT_EQ(Sample(text, "agentvm_vms{state=\"failed\"}"), 0);
  EXPECT_EQ(Sample(text, "agentvm_pool_vms{pool=\"tiny-1c-256m-isolated\",state=\"ready\"}"), 2);
  EXPECT_EQ(Sample(text, "agentvm_pool_vms{pool=\"tiny-1c-256m-isolated\",state=\"in_use\"}"), 3);
  EXPECT_DOUBLE_EQ(Sample(text, "agentvm_vm_cpu_seconds_total{vm=\"vm-a\"}"), 3.0);  // 300 ticks at 100 Hz
  EXPECT_EQ(Sample(text, "agentvm_vm_resident_memory_bytes{vm=\"vm-a\"}"), 2048 * 1024);
  EXPECT_EQ(Sample(text, "agentvm_vm_resident_memory_bytes{vm=\"vm-c\"}"), -1);
  EXPECT_EQ(Sample(text, "process_resident_memory_bytes"), 1024 * 1024);
  EXPECT_EQ(Sample(text, "process_open_fds"), 5);
}

TEST(MetricsTest, PerVmBlockAndNetworkIoAreCountersWithAVmLabel) {
  FakeProc proc;  // also the fake sysfs root
  FakeProcess(proc.path, 4242, 1, 1, 1024, 0);
  const auto stats = proc.path / "class" / "net" / "avm-a" / "statistics";
  std::filesystem::create_directories(stats);
  std::ofstream(stats / "rx_bytes") << "1500\n";  // the tap received: the VM sent
  std::ofstream(stats / "tx_bytes") << "90000\n";
  Metrics metrics;
  Metrics::Snapshot snapshot;
  snapshot.proc = proc.path.string();
  snapshot.sys = proc.path.string();
  snapshot.vms = {{.id = "vm-a",
                   .state = VmState::kRunning,
                   .pid = 4242,
                   .tap = "avm-a",
                   .refused_connections = 7,
                   .block = {BlockIo{.drive = "disk0", .read_bytes = 4096, .written_bytes = 8192, .read_ops = 1,
                                     .write_ops = 2}}},
                  {.id = "vm-b", .state = VmState::kRunning, .pid = 4242, .tap = "../../etc"}};
  std::string text = metrics.Render(snapshot);
  EXPECT_EQ(Sample(text, "agentvm_vm_block_read_bytes_total{drive=\"disk0\",vm=\"vm-a\"}"), 4096) << text;
  EXPECT_EQ(Sample(text, "agentvm_vm_block_written_bytes_total{drive=\"disk0\",vm=\"vm-a\"}"), 8192);
  EXPECT_EQ(Sample(text, "agentvm_vm_block_read_ops_total{drive=\"disk0\",vm=\"vm-a\"}"), 1);
  EXPECT_EQ(Sample(text, "agentvm_vm_block_write_ops_total{drive=\"disk0\",vm=\"vm-a\"}"), 2);
  EXPECT_EQ(Sample(text, "agentvm_vm_network_transmit_bytes_total{vm=\"vm-a\"}"), 1500);
  EXPECT_EQ(Sample(text, "agentvm_vm_network_receive_bytes_total{vm=\"vm-a\"}"), 90000);
  EXPECT_EQ(Sample(text, "agentvm_vm_network_receive_bytes_total{vm=\"vm-b\"}"), -1);
  EXPECT_EQ(Sample(text, "agentvm_vm_refused_connections_total{vm=\"vm-a\"}"), 7);
}

TEST(MetricsTest, BlockStatsAreParsedFromQmpsReplyAndBadEntriesSkipped) {
  auto reply = nlohmann::json::parse(R"([
    {"device": "", "node-name": "disk0", "qdev": "/machine/peripheral-anon/device[1]/virtio-backend",
     "stats": {"rd_bytes": 1048576, "wr_bytes": 4096, "rd_operations": 30, "wr_operations": 1, "flush_operations": 9}},
    {"device": "cd0", "stats": {"rd_bytes": 5}},
    {"device": "", "stats": {"rd_bytes": 5}},
    {"node-name": "disk1"},
    {"node-name": "disk2", "stats": {"rd_bytes": -3, "wr_bytes": "x"}},
    "junk"
  ])");
  auto drives = ParseBlockStats(reply);
  ASSERT_EQ(drives.size(), 3u);
  EXPECT_EQ(drives[0].drive, "disk0");
  EXPECT_EQ(drives[0].read_bytes, 1048576u);
  EXPECT_EQ(drives[0].written_bytes, 4096u);
  EXPECT_EQ(drives[0].read_ops, 30u);
  EXPECT_EQ(drives[0].write_ops, 1u);
  EXPECT_EQ(drives[1].drive, "cd0");
  EXPECT_EQ(drives[2].drive, "disk2");
  EXPECT_EQ(drives[2].read_bytes, 0u);
  EXPECT_TRUE(ParseBlockStats(nlohmann::json::object()).empty());
}

}  // namespace
}  // namespace agentvm
