// Operations on a real daemon and VM: the events tell a VM's life in order
// (`agentvm events -f` prints it as it happens), and GET /metrics, on the
// socket and on TCP (metrics_listen), parses with Prometheus' own parser and
// moves as the VM boots, execs and writes to its disk.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/io.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

using nlohmann::json;
namespace bp = boost::process;

// Metrics text parsed by prometheus_client (tests/support/parse_metrics.py).
std::map<std::string, double> ParseMetrics(const Daemon& daemon, const std::string& body) {
  const std::string file = daemon.root() + "/metrics.txt";
  std::ofstream(file) << body;
  // Debian's python3, where scripts/install-deps put python3-prometheus-client
  // (a python3 earlier in PATH, e.g. pyenv's, would not have it).
  auto parsed =
      RunCommand({"/usr/bin/python3", std::string(AGENTVM_SOURCE_DIR) + "/tests/support/parse_metrics.py", file});
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err << "\n" << body;
  std::map<std::string, double> samples;
  if (parsed.exit_code == 0) {
    const json all = json::parse(parsed.out);  // named: items() refers into it
    for (const auto& [key, value] : all.items()) {
      if (value.is_number()) samples[key] = value.get<double>();
    }
  }
  return samples;
}

// GET /metrics on the API socket.
std::map<std::string, double> Scrape(const Daemon& daemon) {
  auto [status, body] = daemon.Http("GET", "/metrics");
  EXPECT_EQ(status, 200) << body;
  return ParseMetrics(daemon, body);
}

// GET /metrics on TCP (metrics_listen).
std::map<std::string, double> ScrapeTcp(const Daemon& daemon, int port) {
  auto got = RunCommand({"curl", "-sS", "--fail", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
  EXPECT_EQ(got.exit_code, 0) << got.err;
  return ParseMetrics(daemon, got.out);
}

// A loopback port nothing listens on now (the kernel's pick).
int FreeTcpPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

// `agentvm events -f` running in the background, its output in a file;
// interrupted (Ctrl-C's SIGINT) and reaped when it goes.
class EventsFollower {
 public:
  EventsFollower(const Daemon& daemon, std::vector<std::string> args) : out_(daemon.root() + "/events-f.txt") {
    std::vector<std::string> argv = {"--socket", daemon.socket(), "events", "-f"};
    argv.insert(argv.end(), args.begin(), args.end());
    child_ = std::make_unique<bp::child>(bp::exe = BinPath("agentvm"), bp::args = argv, bp::std_in < bp::null,
                                         bp::std_out > out_, bp::std_err > out_ + ".err");
  }
  ~EventsFollower() {
    ::kill(child_->id(), SIGINT);
    if (!WaitWithTimeout(*child_, std::chrono::seconds(10))) child_->terminate();
  }

  // Its lines so far, once one holds `text` (or after `timeout`).
  std::vector<std::string> LinesOnceSeen(const std::string& text, std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string all;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(out_);
      all.assign(std::istreambuf_iterator<char>(in), {});
      if (all.find(text) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::vector<std::string> lines;
    std::istringstream stream(all);
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    return lines;
  }

 private:
  std::string out_;
  std::unique_ptr<bp::child> child_;
};

// The TYPE column of `agentvm events` lines (TIME VM TYPE details).
std::vector<std::string> TypesOf(const std::vector<std::string>& lines) {
  std::vector<std::string> types;
  for (const std::string& line : lines) {
    std::istringstream words(line);
    std::string time, vm, type;
    words >> time >> vm >> type;
    types.push_back(type);
  }
  return types;
}

std::vector<json> NdjsonLines(const std::string& text) {
  std::vector<json> lines;
  std::size_t at = 0;
  for (std::size_t end; (end = text.find('\n', at)) != std::string::npos; at = end + 1) {
    lines.push_back(json::parse(text.substr(at, end - at)));
  }
  return lines;
}

TEST(VmOperationsTest, EventsTellAVmsLifeInOrderAndMetricsMove) {
  const int port = FreeTcpPort();
  ASSERT_NE(port, 0);
  Daemon daemon({.extra_args = {"--metrics-listen", "127.0.0.1:" + std::to_string(port)}});
  // Following from before the VM exists: every event of its life comes as it happens.
  EventsFollower follower(daemon, {"--type", "created,started,exec_started,exec_finished,stopped,removed"});
  auto before = ScrapeTcp(daemon, port);
  ASSERT_TRUE(before.contains("agentvm_boots_total{mode=\"cold\"}"));
  EXPECT_EQ(before["agentvm_vms{state=\"running\"}"], 0);
  EXPECT_GT(before["process_resident_memory_bytes"], 0);
  EXPECT_GT(before["process_open_fds"], 0);

  const std::string id = daemon.CreateVm({"--boot", "cold"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(daemon.Cli({"exec", id, "--", "true"}).exit_code, 0);
  EXPECT_EQ(daemon.Cli({"exec", id, "--", "sh", "-c", "exit 3"}).exit_code, 3);
  const auto written_before = Scrape(daemon)["agentvm_vm_block_written_bytes_total{drive=\"disk0\",vm=\"" + id + "\"}"];
  EXPECT_EQ(daemon.Cli({"exec", id, "--", "sh", "-c", "dd if=/dev/zero of=/root/blob bs=1M count=8 2>/dev/null && sync"})
                .exit_code,
            0);

  auto running = ScrapeTcp(daemon, port);
  EXPECT_EQ(running["agentvm_vms{state=\"running\"}"], 1);
  EXPECT_EQ(running["agentvm_boots_total{mode=\"cold\"}"], before["agentvm_boots_total{mode=\"cold\"}"] + 1);
  EXPECT_EQ(running["agentvm_boot_duration_seconds_count{mode=\"cold\"}"], 1);
  EXPECT_EQ(running["agentvm_execs_total{result=\"ok\"}"], before["agentvm_execs_total{result=\"ok\"}"] + 2);
  EXPECT_EQ(running["agentvm_execs_total{result=\"nonzero\"}"], 1);
  EXPECT_EQ(running["agentvm_exec_duration_seconds_count"], 3);
  // The 8 MiB written (and synced) went through the VM's disk.
  const std::string disk = "{drive=\"disk0\",vm=\"" + id + "\"}";
  EXPECT_GE(running["agentvm_vm_block_written_bytes_total" + disk], written_before + (8 << 20));
  EXPECT_GT(running["agentvm_vm_block_write_ops_total" + disk], 0);
  EXPECT_GT(running["agentvm_vm_block_read_bytes_total" + disk], 0);  // the boot read its root

  // A QEMU that does not answer QMP (stopped) costs its block series, not the scrape.
  const int qemu = json::parse(daemon.Cli({"inspect", id}).out)["pid"].get<int>();
  ASSERT_EQ(::kill(qemu, SIGSTOP), 0);
  const auto asked = std::chrono::steady_clock::now();
  auto hung = ScrapeTcp(daemon, port);
  const auto took = std::chrono::steady_clock::now() - asked;
  ::kill(qemu, SIGCONT);
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_FALSE(hung.contains("agentvm_vm_block_written_bytes_total" + disk));
  EXPECT_EQ(hung["agentvm_vms{state=\"running\"}"], 1);
  EXPECT_GT(running["agentvm_vm_cpu_seconds_total{vm=\"" + id + "\"}"], 0);
  EXPECT_GT(running["agentvm_vm_resident_memory_bytes{vm=\"" + id + "\"}"], 16 << 20);

  ASSERT_EQ(daemon.Cli({"stop", id}).exit_code, 0);
  ASSERT_EQ(daemon.Cli({"rm", id}).exit_code, 0);
  auto after = Scrape(daemon);
  EXPECT_EQ(after["agentvm_vms{state=\"running\"}"], 0);
  EXPECT_FALSE(after.contains("agentvm_vm_cpu_seconds_total{vm=\"" + id + "\"}"));

  auto [status, body] = daemon.Http("GET", "/v1/events?follow=false&vm=" + id);
  ASSERT_EQ(status, 200) << body;
  auto events = NdjsonLines(body);
  std::vector<std::string> types;
  for (const auto& event : events) types.push_back(event["type"]);
  const std::vector<std::string> life = {"created",       "started",      "exec_started", "exec_finished",
                                        "exec_started",  "exec_finished", "exec_started", "exec_finished",
                                        "stopped",       "removed"};
  EXPECT_EQ(types, life) << body;
  // agentvm events -f printed the same, as it happened.
  auto followed = follower.LinesOnceSeen(" removed", std::chrono::seconds(10));
  EXPECT_EQ(TypesOf(followed), life) << ::testing::PrintToString(followed);
  if (!followed.empty()) EXPECT_NE(followed[0].find(id), std::string::npos) << followed[0];
  if (types.size() == life.size()) {
    EXPECT_EQ(events[1]["boot"], "cold");
    EXPECT_GT(events[1]["ms"].get<int>(), 0);
    EXPECT_EQ(events[3]["exit_code"], 0);
    EXPECT_EQ(events[5]["exit_code"], 3);
    EXPECT_EQ(events[5]["exec"], events[4]["seq"]);
    for (std::size_t i = 1; i < events.size(); ++i) EXPECT_GT(events[i]["seq"], events[i - 1]["seq"]);
  }
}

}  // namespace
}  // namespace agentvm::testing
