// Operations on a real daemon and VM: the events tell a VM's life in order,
// and GET /metrics parses with Prometheus' own parser and moves as the VM
// boots and execs.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

using nlohmann::json;

// GET /metrics, parsed by prometheus_client (tests/support/parse_metrics.py).
std::map<std::string, double> Scrape(const Daemon& daemon) {
  auto [status, body] = daemon.Http("GET", "/metrics");
  EXPECT_EQ(status, 200) << body;
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

std::vector<json> NdjsonLines(const std::string& text) {
  std::vector<json> lines;
  std::size_t at = 0;
  for (std::size_t end; (end = text.find('\n', at)) != std::string::npos; at = end + 1) {
    lines.push_back(json::parse(text.substr(at, end - at)));
  }
  return lines;
}

TEST(VmOperationsTest, EventsTellAVmsLifeInOrderAndMetricsMove) {
  Daemon daemon;
  auto before = Scrape(daemon);
  ASSERT_TRUE(before.contains("agentvm_boots_total{mode=\"cold\"}"));
  EXPECT_EQ(before["agentvm_vms{state=\"running\"}"], 0);
  EXPECT_GT(before["process_resident_memory_bytes"], 0);
  EXPECT_GT(before["process_open_fds"], 0);

  const std::string id = daemon.CreateVm({"--boot", "cold"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(daemon.Cli({"exec", id, "--", "true"}).exit_code, 0);
  EXPECT_EQ(daemon.Cli({"exec", id, "--", "sh", "-c", "exit 3"}).exit_code, 3);

  auto running = Scrape(daemon);
  EXPECT_EQ(running["agentvm_vms{state=\"running\"}"], 1);
  EXPECT_EQ(running["agentvm_boots_total{mode=\"cold\"}"], before["agentvm_boots_total{mode=\"cold\"}"] + 1);
  EXPECT_EQ(running["agentvm_boot_duration_seconds_count{mode=\"cold\"}"], 1);
  EXPECT_EQ(running["agentvm_execs_total{result=\"ok\"}"], before["agentvm_execs_total{result=\"ok\"}"] + 1);
  EXPECT_EQ(running["agentvm_execs_total{result=\"nonzero\"}"], 1);
  EXPECT_EQ(running["agentvm_exec_duration_seconds_count"], 2);
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
  EXPECT_EQ(types, (std::vector<std::string>{"created", "started", "exec_started", "exec_finished", "exec_started",
                                             "exec_finished", "stopped", "removed"}))
      << body;
  if (types.size() == 8) {
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
