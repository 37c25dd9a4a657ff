// `agentvmd --doctor` (and `agentvm doctor`, which runs it): checks whether
// this host can run agentvmd with this config, and says what to fix. The
// facts are gathered once (ProbeDoctorFacts) with the same probes the daemon
// uses to decide (ProbeHost, ChooseAccel, DetectCgroups, ImageStore), so the
// report says what the daemon will do; Diagnose is pure and unit-tested with
// made-up hosts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "supervisor/config.h"
#include "supervisor/host_facts.h"
#include "supervisor/jail_plan.h"

namespace agentvm {

struct DoctorFacts {
  HostFacts host;
  bool kvm_device_exists = false;  // /dev/kvm is there (usable or not)
  bool root = false;
  Result<std::string> qemu_version = std::string();
  Result<std::string> qemu_img_version = std::string();
  Result<CgroupHost> cgroups = CgroupHost{};
  std::vector<std::string> images;  // usable images in image_dir
  Result<void> nftables;            // nf_tables answers over netlink
  // The host's IPv4 networks (interface, "a.b.c.d/len"), to find a clash
  // with the VMs' subnet.
  std::vector<std::pair<std::string, std::string>> networks;
  // Accounts whose uid or gid falls in the jail's range.
  std::vector<std::string> jail_range_accounts;
  bool virtiofsd_runs = false;  // the configured virtiofsd is executable
  // mount_roots that are not on a nosuid file system (or do not exist).
  std::vector<std::string> suid_mount_roots;
  std::uint64_t state_dir_free_bytes = 0;
  std::uint64_t run_dir_free_bytes = 0;
};

struct DoctorFinding {
  enum class Level { kOk, kWarn, kFail };
  Level level = Level::kOk;
  std::string check;   // "accelerator", "images", ...
  std::string detail;  // what was found
  std::string fix;     // what to do; empty when nothing
};

DoctorFacts ProbeDoctorFacts(const DaemonConfig& config);

std::vector<DoctorFinding> Diagnose(const DaemonConfig& config, const DoctorFacts& facts);

// One line per finding ("ok", "warn" or "FAIL", the check, the detail, then
// "fix: ..." indented below), and a last line with the verdict.
std::string FormatDoctorReport(const std::vector<DoctorFinding>& findings);

// 0 when nothing failed, 1 otherwise.
int DoctorExitCode(const std::vector<DoctorFinding>& findings);

}  // namespace agentvm
