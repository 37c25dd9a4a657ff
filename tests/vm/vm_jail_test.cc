// The jail of a running VM's QEMU, seen from the host as an attacker who
// owns that QEMU would see it: which uid, which capabilities, which files,
// which limits (docs/security.md).
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/command.h"
#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;

int QemuPid(const Daemon& daemon, const std::string& id) {
  auto inspected = daemon.Cli({"inspect", id});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
  auto info = nlohmann::json::parse(inspected.out, nullptr, false);
  return info.value("pid", 0);
}

// The value of `key:` in /proc/<pid>/status.
std::string StatusField(int pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key + ":")) {
      std::istringstream fields(line.substr(key.size() + 1));
      std::string first;
      fields >> first;
      return first;
    }
  }
  return "";
}

// The path of `pid`'s cgroup in the hierarchy `controller` (v1) or the
// unified one (v2).
std::string CgroupDir(int pid, const std::string& controller) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  std::string v2;
  while (std::getline(in, line)) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) v2 = "/sys/fs/cgroup" + path;
    std::istringstream list(controllers);
    std::string name;
    while (std::getline(list, name, ',')) {
      if (name == controller) return "/sys/fs/cgroup/" + controller + path;
    }
  }
  return v2;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(VmJailTest, QemuRunsConfinedAndSeesOnlyItsOwnFiles) {
  Daemon daemon;
  const std::string id = daemon.CreateVm();
  const std::string other = daemon.CreateVm();
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(other.empty());
  const int pid = QemuPid(daemon, id);
  ASSERT_GT(pid, 0);

  EXPECT_NE(StatusField(pid, "Uid"), "0");
  EXPECT_NE(StatusField(pid, "Gid"), "0");
  EXPECT_NE(StatusField(pid, "Uid"), StatusField(QemuPid(daemon, other), "Uid")) << "two VMs share a uid";
  EXPECT_EQ(StatusField(pid, "CapEff"), "0000000000000000");
  EXPECT_EQ(StatusField(pid, "CapPrm"), "0000000000000000");
  EXPECT_EQ(StatusField(pid, "CapBnd"), "0000000000000000");
  EXPECT_EQ(StatusField(pid, "CapAmb"), "0000000000000000");
  EXPECT_EQ(StatusField(pid, "NoNewPrivs"), "1");
  EXPECT_EQ(StatusField(pid, "Seccomp"), "2");
  // Its own PID namespace, in which it is process 1.
  std::ifstream nspid_in("/proc/" + std::to_string(pid) + "/status");
  std::string line, nspid;
  while (std::getline(nspid_in, line)) {
    if (line.starts_with("NSpid:")) nspid = line;
  }
  EXPECT_TRUE(nspid.ends_with("\t1")) << nspid;
  for (const char* ns : {"mnt", "pid", "ipc"}) {
    EXPECT_NE(fs::read_symlink("/proc/self/ns/" + std::string(ns)),
              fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns))
        << "QEMU shares the daemon's " << ns << " namespace";
  }

  // Its root holds its own files and nothing else of the host's.
  const std::string root = "/proc/" + std::to_string(pid) + "/root";
  EXPECT_TRUE(fs::exists(root + daemon.state_dir() + "/vms/" + id + "/overlay.qcow2"));
  EXPECT_TRUE(fs::exists(root + daemon.run_dir() + "/vms/" + id + "/qmp.sock"));
  EXPECT_TRUE(fs::exists(root + "/dev/urandom"));
  EXPECT_FALSE(fs::exists(root + "/etc/shadow"));
  EXPECT_FALSE(fs::exists(root + "/etc"));
  EXPECT_FALSE(fs::exists(root + "/root"));
  EXPECT_FALSE(fs::exists(root + "/proc/1"));
  EXPECT_FALSE(fs::exists(root + "/sys/fs/cgroup"));
  EXPECT_FALSE(fs::exists(root + daemon.state_dir() + "/agentvm.db"));
  EXPECT_FALSE(fs::exists(root + daemon.state_dir() + "/vms/" + other));
  EXPECT_FALSE(fs::exists(root + daemon.run_dir() + "/vms/" + other));
  EXPECT_FALSE(fs::exists(root + daemon.run_dir() + "/agentvm.sock"));
  std::vector<std::string> top;
  for (const auto& entry : fs::directory_iterator(root)) top.push_back(entry.path().filename().string());
  std::sort(top.begin(), top.end());
  std::string listing;
  for (const auto& name : top) listing += name + " ";
  // /usr (QEMU, its libraries and firmware), /lib and /lib64 (or their
  // links), /dev and the VM's own paths (under the test's temp root and
  // the image dir).
  for (const auto& name : top) {
    const bool allowed = name == "usr" || name == "lib" || name == "lib64" || name == "dev" ||
                         daemon.state_dir().starts_with("/" + name + "/") ||
                         ImageDir().starts_with("/" + name + "/");
    EXPECT_TRUE(allowed) << "unexpected /" << name << " in the jail's root: " << listing;
  }
  std::vector<std::string> devices;
  for (const auto& entry : fs::directory_iterator(root + "/dev")) devices.push_back(entry.path().filename().string());
  std::sort(devices.begin(), devices.end());
  EXPECT_EQ(devices, (std::vector<std::string>{"null", "urandom"}));
  // Read-only where QEMU only reads.
  const std::string probe = root + "/usr/agentvm-jail-probe";
  EXPECT_FALSE(std::ofstream(probe).is_open());
  std::error_code ignored;
  fs::remove(probe, ignored);

  // A cgroup with a memory limit of guest RAM plus overhead, and a pids limit.
  const std::string memory = CgroupDir(pid, "memory");
  ASSERT_NE(memory.find(id), std::string::npos) << memory;
  std::string limit = ReadFirstLine(memory + "/memory.limit_in_bytes");
  if (limit.empty()) limit = ReadFirstLine(memory + "/memory.max");
  ASSERT_FALSE(limit.empty());
  ASSERT_NE(limit, "max");
  EXPECT_LT(std::stoull(limit), 4ull << 30) << "no useful memory limit";
  EXPECT_GT(std::stoull(limit), 256ull << 20) << "less than the guest's RAM";
  const std::string pids = CgroupDir(pid, "pids");
  EXPECT_EQ(ReadFirstLine(pids + "/pids.max"), "512");

  // The VM works inside it; removing it removes its cgroup and gives its
  // disk back to root.
  auto exec = daemon.Cli({"exec", id, "--", "sh", "-c", "echo jailed"});
  EXPECT_EQ(exec.out, "jailed\n") << exec.err;
  auto stop = daemon.Cli({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_FALSE(fs::exists(memory)) << "cgroup left behind: " << memory;
  EXPECT_FALSE(fs::exists(pids)) << "cgroup left behind: " << pids;
  struct stat disk {};
  ASSERT_EQ(::stat((daemon.state_dir() + "/vms/" + id + "/overlay.qcow2").c_str(), &disk), 0);
  EXPECT_EQ(disk.st_uid, 0u);
  EXPECT_EQ(daemon.Cli({"rm", id}).exit_code, 0);
  EXPECT_EQ(daemon.Cli({"rm", "-f", other}).exit_code, 0);
}

}  // namespace
}  // namespace agentvm::testing
