// Host directories mounted into a VM over virtiofs (docs/workspaces.md): a
// file the host wrote is read in the guest and one the guest writes lands on
// the host; a read-only mount refuses writes; a hostile guest cannot leave
// the mount; no virtiofsd outlives its VM (rm, QEMU killed, daemon killed).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A daemon whose config allows mounts under `root`.
DaemonOptions AllowMountsUnder(const TempDir& dir, const fs::path& root) {
  const fs::path config = dir.path() / "agentvmd.yaml";
  std::ofstream(config) << "mount_roots:\n  - " << root.string() << "\n";
  return DaemonOptions{.extra_args = {"--config", config.string()}};
}

// The virtiofsds of `daemon`'s VMs (their argv[0] is a socket in its run dir).
std::string Virtiofsds(const Daemon& daemon) {
  return RunCommand({"pgrep", "-af", daemon.run_dir() + "/vms/.*/fs[0-9]+\\.sock"}).out;
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

class VmWorkspaceMountTest : public ::testing::Test {
 protected:
  VmWorkspaceMountTest() : local_("avm-mnt"), daemon_(AllowMountsUnder(local_, local_.path() / "roots")) {
    fs::create_directories(rw_);
    fs::create_directories(ro_);
    std::ofstream(rw_ / "hello.txt") << "written on the host\n";
    std::ofstream(ro_ / "keep.txt") << "read only\n";
  }

  CommandResult Exec(const std::string& id, const std::string& script, const std::string& user = "") {
    std::vector<std::string> args = {"exec"};
    if (!user.empty()) args.insert(args.end(), {"--user", user});
    args.insert(args.end(), {id, "--", "sh", "-c", script});
    return daemon_.Cli(args);
  }

  TempDir local_;
  Daemon daemon_;
  const fs::path rw_ = local_.path() / "roots" / "repo";
  const fs::path ro_ = local_.path() / "roots" / "data";
};

TEST_F(VmWorkspaceMountTest, ReadWriteAndReadOnlyMountsWorkBothWays) {
  const std::string id = daemon_.CreateVm({"-v", rw_.string() + ":/workspace", "-v", ro_.string() + ":/data:ro"});
  ASSERT_FALSE(id.empty());
  // inspect shows the mounts with their canonical sources.
  auto inspect = daemon_.Cli({"inspect", id});
  EXPECT_NE(inspect.out.find("\"mounts\""), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("\"" + fs::canonical(ro_).string() + "\""), std::string::npos) << inspect.out;

  // Host -> guest.
  auto read = Exec(id, "cat /workspace/hello.txt /data/keep.txt");
  EXPECT_EQ(read.out, "written on the host\nread only\n") << read.err << daemon_.Log();

  // Guest -> host: owned by the uid the guest wrote as (virtiofsd 7.2 has no
  // uid mapping; docs/workspaces.md).
  // Guest uid 1000 needs the right to write there, as on any shared directory.
  ::chmod(rw_.c_str(), 0777);
  auto wrote = Exec(id, "echo from the guest > /workspace/result.txt", "1000");
  ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
  EXPECT_EQ(ReadAll(rw_ / "result.txt"), "from the guest\n");
  struct stat st {};
  ASSERT_EQ(::stat((rw_ / "result.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);

  // Read-only: refused in the guest, unchanged on the host.
  auto refused = Exec(id, "echo changed > /data/keep.txt");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("Read-only file system"), std::string::npos) << refused.err;
  EXPECT_NE(Exec(id, "touch /data/new").exit_code, 0);
  EXPECT_EQ(ReadAll(ro_ / "keep.txt"), "read only\n");
  EXPECT_FALSE(fs::exists(ro_ / "new"));

  EXPECT_FALSE(Virtiofsds(daemon_).empty());
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);
  EXPECT_TRUE(WaitUntil([&] { return Virtiofsds(daemon_).empty(); })) << Virtiofsds(daemon_);
}
TEST_F(VmWorkspaceMountTest, AHostileGuestStaysInsideTheMount) {
  std::ofstream(local_.path() / "roots" / "outside-marker") << "next to the mount\n";
  const std::string id = daemon_.CreateVm({"-v", rw_.string() + ":/workspace"});
  ASSERT_FALSE(id.empty());

  // A symlink to /etc stays a symlink on the host; following it in the guest
  // reaches the guest's /etc, never the host's.
  auto linked = Exec(id, "ln -s /etc /workspace/etc-link && echo pwned > /workspace/etc-link/agentvm-pwned");
  EXPECT_EQ(linked.exit_code, 0) << linked.err;
  EXPECT_TRUE(fs::is_symlink(rw_ / "etc-link"));
  EXPECT_EQ(fs::read_symlink(rw_ / "etc-link"), "/etc");
  EXPECT_FALSE(fs::exists("/etc/agentvm-pwned"));

  // Device nodes are refused (virtiofsd runs without CAP_MKNOD).
  auto node = Exec(id, "mknod /workspace/mem c 1 1");
  EXPECT_NE(node.exit_code, 0) << "mknod of a character device succeeded";
  EXPECT_FALSE(fs::exists(rw_ / "mem"));

  // ".." at the mount's root is the guest's own parent, never the host's.
  auto up = Exec(id, "cat /workspace/../outside-marker");
  EXPECT_NE(up.exit_code, 0);
  EXPECT_EQ(up.out.find("next to the mount"), std::string::npos);

  // A setuid bit the guest sets: printed, not asserted. It reaches the host
  // (root-owned 4755: the known gap in docs/workspaces.md, to be closed by
  // squashing guest root with an idmapped bind mount).
  auto suid = Exec(id, "cp /bin/busybox /workspace/suid && chmod 4755 /workspace/suid && stat -c %a /workspace/suid");
  struct stat st {};
  const bool made = ::stat((rw_ / "suid").c_str(), &st) == 0;
  std::printf("guest chmod 4755: exit %d, guest sees %s, host mode %o owner %u\n", suid.exit_code, suid.out.c_str(),
              made ? st.st_mode & 07777 : 0, made ? st.st_uid : 0);
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);
}

TEST_F(VmWorkspaceMountTest, NoVirtiofsdOutlivesItsQemuOrTheDaemon) {
  const std::string id = daemon_.CreateVm({"-v", rw_.string() + ":/workspace"});
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(Virtiofsds(daemon_).empty());
  // QEMU killed under the daemon: its virtiofsd goes with it.
  auto qemu = RunCommand({"pgrep", "-f", "guest=" + id});
  ASSERT_EQ(qemu.exit_code, 0) << qemu.err;
  std::istringstream pids(qemu.out);
  for (int pid = 0; pids >> pid;) ::kill(pid, SIGKILL);
  EXPECT_TRUE(WaitUntil([&] { return Virtiofsds(daemon_).empty(); })) << Virtiofsds(daemon_);
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);

  // The daemon killed: its virtiofsds die with it; the restarted daemon
  // does not adopt the VM, kills its QEMU and lists it as failed.
  const std::string second = daemon_.CreateVm({"-v", rw_.string() + ":/workspace"});
  ASSERT_FALSE(second.empty());
  daemon_.Crash();
  EXPECT_TRUE(WaitUntil([&] { return Virtiofsds(daemon_).empty(); })) << Virtiofsds(daemon_);
  daemon_.Restart();
  auto listed = daemon_.Cli({"inspect", second});
  EXPECT_NE(listed.out.find("\"failed\""), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("not adopted"), std::string::npos) << listed.out;
  EXPECT_NE(RunCommand({"pgrep", "-f", "guest=" + second}).exit_code, 0) << "its QEMU still runs";
  EXPECT_EQ(daemon_.Cli({"rm", "-f", second}).exit_code, 0);
}

TEST(VmWorkspaceMountPolicyTest, SourcesOutsideTheRootsAndSystemDirsAreRefusedWith400) {
  TempDir local("avm-mntp");
  fs::create_directories(local.path() / "roots" / "ok");
  fs::create_directories(local.path() / "elsewhere");
  Daemon daemon(AllowMountsUnder(local, local.path() / "roots"));
  auto body = [](const std::string& source) {
    return R"({"mounts": [{"source": ")" + source + R"(", "target": "/workspace"}]})";
  };
  for (const std::string& source : {(local.path() / "elsewhere").string(), std::string("/etc"), std::string("/"),
                                    daemon.state_dir()}) {
    auto [status, answer] = daemon.Http("POST", "/v1/vms", body(source));
    EXPECT_EQ(status, 400) << source << ": " << answer;
    EXPECT_NE(answer.find("refused"), std::string::npos) << answer;
  }
  auto [status, answer] = daemon.Http("POST", "/v1/vms", R"({"mounts": [{"source": "/x", "target": "../etc"}]})");
  EXPECT_EQ(status, 400) << answer;
  EXPECT_EQ(daemon.Http("GET", "/v1/vms").second.find("\"id\""), std::string::npos) << "no VM was made";
}

}  // namespace
}  // namespace agentvm::testing
