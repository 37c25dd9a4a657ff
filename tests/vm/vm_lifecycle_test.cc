// A VM's life through the CLI: create, exec, cp both ways, logs, stop, rm;
// two VMs side by side; QEMU killed under the daemon's feet.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/files.h"
#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

nlohmann::json Inspect(const Daemon& daemon, const std::string& id) {
  auto inspected = daemon.Cli({"inspect", id});
  EXPECT_EQ(inspected.exit_code, 0) << inspected.err;
  return nlohmann::json::parse(inspected.out, nullptr, false);
}

TEST(VmLifecycleTest, CreateExecCopyLogsStopRemove) {
  Daemon daemon;
  TempDir local("avm-cp");
  const std::string id = daemon.CreateVm();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Inspect(daemon, id)["state"], "running");

  auto exec = daemon.Cli({"exec", id, "--", "sh", "-c", "echo hi; exit 3"});
  EXPECT_EQ(exec.exit_code, 3);
  EXPECT_EQ(exec.out, "hi\n");

  // 20 MiB of random bytes: binary-safe and over the 16 MiB frame limit, so
  // the file crosses the channel in several frames.
  std::string data(20 << 20, '\0');
  std::mt19937 random(42);
  for (auto& c : data) c = static_cast<char>(random());
  std::ofstream(local.path() / "in.bin", std::ios::binary) << data;
  auto cp_in = daemon.Cli({"cp", (local.path() / "in.bin").string(), id + ":/root/in.bin"});
  ASSERT_EQ(cp_in.exit_code, 0) << cp_in.err;
  auto sum = daemon.Cli({"exec", id, "--", "sh", "-c", "wc -c < /root/in.bin"});
  EXPECT_EQ(sum.out, std::to_string(data.size()) + "\n");
  auto cp_out = daemon.Cli({"cp", id + ":/root/in.bin", (local.path() / "out.bin").string()});
  ASSERT_EQ(cp_out.exit_code, 0) << cp_out.err;
  EXPECT_TRUE(ReadFile(local.path() / "out.bin") == data) << "the file changed on its round trip";

  auto missing = daemon.Cli({"cp", id + ":/no/such/file", (local.path() / "x").string()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("/no/such/file"), std::string::npos) << missing.err;

  auto logs = daemon.Cli({"logs", id});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_NE(logs.out.find("Linux version"), std::string::npos) << "no boot log in: " << logs.out.substr(0, 400);

  auto stop = daemon.Cli({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(Inspect(daemon, id)["state"], "stopped");
  EXPECT_FALSE(ProcessWithArgExists(daemon.run_dir() + "/vms/" + id + "/"));
  EXPECT_TRUE(std::filesystem::exists(daemon.state_dir() + "/vms/" + id + "/overlay.qcow2"))
      << "a stopped VM keeps its disk until rm";

  auto rm = daemon.Cli({"rm", id});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_FALSE(std::filesystem::exists(daemon.state_dir() + "/vms/" + id));
  EXPECT_FALSE(std::filesystem::exists(daemon.run_dir() + "/vms/" + id));
  EXPECT_NE(daemon.Cli({"inspect", id}).exit_code, 0);
}

TEST(VmLifecycleTest, TwoVmsDoNotSeeEachOthersFiles) {
  Daemon daemon;
  const std::string a = daemon.CreateVm();
  const std::string b = daemon.CreateVm();
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  ASSERT_NE(a, b);

  EXPECT_EQ(daemon.Cli({"exec", a, "--", "sh", "-c", "echo secret-of-a > /root/secret"}).exit_code, 0);
  auto in_a = daemon.Cli({"exec", a, "--", "cat", "/root/secret"});
  EXPECT_EQ(in_a.out, "secret-of-a\n");
  auto in_b = daemon.Cli({"exec", b, "--", "cat", "/root/secret"});
  EXPECT_NE(in_b.exit_code, 0) << "B sees A's file: " << in_b.out;
  EXPECT_EQ(in_b.out, "");

  EXPECT_EQ(daemon.Cli({"rm", "-f", a, b}).exit_code, 0);
}

TEST(VmLifecycleTest, KilledQemuIsNoticedWithinASecondAndRmCleansUp) {
  Daemon daemon;
  const std::string id = daemon.CreateVm();
  ASSERT_FALSE(id.empty());
  const nlohmann::json before = Inspect(daemon, id);
  ASSERT_TRUE(before.contains("pid")) << before.dump();
  const int pid = before["pid"].get<int>();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);

  const auto killed_at = std::chrono::steady_clock::now();
  nlohmann::json after;
  while (std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(1)) {
    after = Inspect(daemon, id);
    if (after["state"] == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(after["state"], "failed") << after.dump();
  EXPECT_NE(after.value("reason", "").find("signal 9"), std::string::npos) << after.dump();

  EXPECT_EQ(daemon.Cli({"rm", id}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(daemon.state_dir() + "/vms/" + id));
  EXPECT_FALSE(std::filesystem::exists(daemon.run_dir() + "/vms/" + id));
}

}  // namespace
}  // namespace agentvm::testing
