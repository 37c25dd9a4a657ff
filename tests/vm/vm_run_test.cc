// `agentvm run` against a real agentvmd booting the real tiny image: what a
// user sees, and that nothing stays behind.
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

// Nothing of a finished `run` may remain: no QEMU, no overlay, no runtime dir.
void ExpectNothingLeft(const Daemon& daemon) {
  EXPECT_FALSE(ProcessWithArgExists(daemon.run_dir() + "/")) << "a QEMU is still running";
  for (const auto& dir : {daemon.run_dir() + "/vms", daemon.state_dir() + "/vms"}) {
    if (!std::filesystem::exists(dir)) continue;
    EXPECT_TRUE(std::filesystem::is_empty(dir)) << dir << " still holds a VM's files";
  }
  auto list = daemon.Cli({"ls", "--json"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find("vm-"), std::string::npos) << "a VM is still listed: " << list.out;
}

TEST(VmRunTest, RelaysStdoutStderrAndTheExitStatus) {
  Daemon daemon;
  auto result = daemon.Cli({"run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(result.exit_code, 7) << result.err;
  EXPECT_EQ(result.out, "out\n");
  EXPECT_EQ(result.err, "err\n");
  ExpectNothingLeft(daemon);
}

TEST(VmRunTest, TimeoutKillsTheCommandAndExits124) {
  Daemon daemon;
  auto result = daemon.Cli({"run", "--timeout", "2", "--", "sleep", "30"});
  EXPECT_EQ(result.exit_code, 124) << result.err;
  // Boot under TCG takes a few seconds; the command itself must end at ~2 s,
  // far from its 30.
  EXPECT_LT(result.elapsed, std::chrono::seconds(25)) << "took " << result.elapsed.count() << " ms";
  ExpectNothingLeft(daemon);
}

TEST(VmRunTest, PassesEnvironmentAndWorkdirAndRunsInAVm) {
  Daemon daemon;
  auto result = daemon.Cli({"run", "--env", "GREETING=hello vm", "--workdir", "/tmp", "--",
                            "sh", "-c", "echo \"$GREETING\"; pwd; uname -r; cat /proc/sys/kernel/hostname"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("hello vm\n/tmp\n"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("cloud-amd64"), std::string::npos) << "not the guest kernel: " << result.out;
  ExpectNothingLeft(daemon);
}

}  // namespace
}  // namespace agentvm::testing
