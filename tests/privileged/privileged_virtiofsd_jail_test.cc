// A mount's virtiofsd in its jail (virtiofsd.h, jail.h), launched for real
// on this host: it runs as a slot uid of the jail's range, in a user
// namespace of its own that maps exactly the ids MountIdMaps gives and in a
// cgroup of its own, with no_new_privs; it and its cgroup are gone when its
// owner drops it.
// Privileged tier: only root may map other users' ids.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "supervisor/jail.h"
#include "supervisor/virtiofsd.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

// The value of `key:` in /proc/PID/status, whitespace as the kernel writes it.
std::string StatusLine(pid_t pid, const std::string& key) {
  std::istringstream status(testing::ReadFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with(key + ":")) return line.substr(key.size() + 1);
  }
  return "";
}

std::string NormalSpaces(std::string text) {
  std::string out;
  for (char c : text) {
    if (c == '\t' || c == ' ') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else if (c != '\n') {
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Through the Jailer, as agentvmd does: a uid slot, a cgroup of its own.
TEST(VirtiofsdJailTest, RunsAsASlotUidInItsOwnUserNamespaceAndCgroupWithNoNewPrivs) {
  testing::TempDir dir("avm-vfsd");
  const fs::path share = dir.path() / "share";
  fs::create_directories(share);
  ASSERT_EQ(::chown(share.c_str(), 4242, 4242), 0);
  ::chmod(dir.path().c_str(), 0755);
  JailConfig config;
  config.cgroup_name = "agentvm-test-" + std::to_string(::getpid());  // not a running daemon's
  config.uid_base = 300000;
  config.gid_base = 310000;
  auto jailer = Jailer::Create(config, "qemu-system-x86_64", dir.str());
  ASSERT_TRUE(jailer) << jailer.error().message;
  const VirtiofsdLaunch launch{.vm_id = "vm-test",
                               .index = 1,
                               .source = share.string(),
                               .socket_path = (dir.path() / "fs1.sock").string(),
                               .log_path = (dir.path() / "virtiofsd.log").string(),
                               .owner = {.uid = 4242, .gid = 4242},
                               .guest_default = {.uid = 1000, .gid = 1000}};

  boost::asio::io_context io;
  auto started = (*jailer)->LaunchVirtiofsd(io.get_executor(), launch);
  ASSERT_TRUE(started) << started.error().message << "\n" << testing::ReadFile(launch.log_path);
  const pid_t pid = started->process->pid();
  const std::string proc = "/proc/" + std::to_string(pid);

  // Slot 0 of the range: guest root is 300000/310000 on the host.
  EXPECT_EQ(NormalSpaces(testing::ReadFile(proc + "/uid_map")), "0 300000 1 1000 4242 1");
  EXPECT_EQ(NormalSpaces(testing::ReadFile(proc + "/gid_map")), "0 310000 1 1000 4242 1");
  EXPECT_EQ(NormalSpaces(StatusLine(pid, "Uid")), "300000 300000 300000 300000");
  EXPECT_EQ(NormalSpaces(StatusLine(pid, "Gid")), "310000 310000 310000 310000");
  EXPECT_EQ(NormalSpaces(StatusLine(pid, "Groups")), "") << "the host root's groups were kept";
  EXPECT_EQ(NormalSpaces(StatusLine(pid, "NoNewPrivs")), "1");
  EXPECT_NE(fs::read_symlink(proc + "/ns/user"), fs::read_symlink("/proc/self/ns/user"));
  EXPECT_NE(fs::read_symlink(proc + "/ns/mnt"), fs::read_symlink("/proc/self/ns/mnt"));
  EXPECT_FALSE(fs::exists(launch.socket_path)) << "the listening socket's path outlived the connection";
  // Its own memory cgroup (v1 or v2), with the configured limit.
  const std::string cgroups = testing::ReadFile(proc + "/cgroup");
  const std::string leaf = config.cgroup_name + "/vm-test.fs1";
  EXPECT_NE(cgroups.find(leaf), std::string::npos) << cgroups;
  const auto& host = (*jailer)->host().cgroups;
  const std::string memory_dir = (host.version == CgroupVersion::kV2 ? host.v2_root : host.v1_roots.at("memory")) +
                                 "/" + leaf;
  const std::string limit_file = host.version == CgroupVersion::kV2 ? "/memory.max" : "/memory.limit_in_bytes";
  EXPECT_EQ(testing::ReadFile(memory_dir + limit_file), std::to_string(512ull << 20) + "\n");

  started->process.reset();  // kills and reaps it, then removes its cgroups
  EXPECT_FALSE(fs::exists(proc));
  EXPECT_FALSE(fs::exists(memory_dir));
  for (const auto& dir : JailCgroupDirs("vm-test", config, host)) EXPECT_FALSE(fs::exists(dir)) << dir;
  for (const std::string& root : {host.v2_root, host.v1_roots.count("memory") ? host.v1_roots.at("memory") : "",
                                  host.v1_roots.count("pids") ? host.v1_roots.at("pids") : "",
                                  host.v1_roots.count("cpu") ? host.v1_roots.at("cpu") : ""}) {
    if (!root.empty()) ::rmdir((root + "/" + config.cgroup_name).c_str());  // the test's parent
  }
}

TEST(VirtiofsdJailTest, WithoutIdsItRunsAsTheHostsRootAsBefore) {
  testing::TempDir dir("avm-vfsd");
  const fs::path share = dir.path() / "share";
  fs::create_directories(share);
  const VirtiofsdLaunch launch{.vm_id = "vm-test",
                               .source = share.string(),
                               .socket_path = (dir.path() / "fs0.sock").string(),
                               .log_path = (dir.path() / "virtiofsd.log").string()};
  boost::asio::io_context io;
  auto started = LaunchVirtiofsd(io.get_executor(), launch, std::nullopt);
  ASSERT_TRUE(started) << started.error().message;
  const pid_t pid = started->process->pid();
  EXPECT_EQ(NormalSpaces(StatusLine(pid, "Uid")), "0 0 0 0");
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/user"), fs::read_symlink("/proc/self/ns/user"));
}

}  // namespace
}  // namespace agentvm
