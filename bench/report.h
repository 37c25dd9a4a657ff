// The markdown that `scripts/bench` prints and bench/README.md keeps.
#pragma once

#include <optional>
#include <string>

#include "bench/boot_bench.h"
#include "bench/exec_bench.h"

namespace agentvm::bench {

struct MachineInfo {
  std::string date;          // UTC, "2026-11-24 00:30 UTC"
  unsigned cpus = 0;
  std::string cpu_model;
  std::string load_average;  // /proc/loadavg's first three fields, at start
  std::string qemu_version;
  std::string image;         // "tiny (kernel 6.1.0-56-cloud-amd64)"
};

MachineInfo ProbeMachine(const std::string& image_dir, const std::string& image);

struct BootReport {
  const BootBenchResult* result;
  int warmups;
};
struct ExecReport {
  const ExecBenchResult* result;
  int warmups;
};

std::string RenderReport(const MachineInfo& machine, std::optional<BootReport> boot,
                         std::optional<ExecReport> exec, const std::string& command);

}  // namespace agentvm::bench
