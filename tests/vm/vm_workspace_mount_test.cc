// Host directories mounted into a VM over virtiofs (docs/workspaces.md): a
// file the host wrote is read in the guest and one the guest writes lands on
// the host; a read-only mount refuses writes; a hostile guest cannot leave
// the mount; no virtiofsd outlives its VM (rm, QEMU killed, daemon killed).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/mount_policy.h"

#include "tests/support/files.h"
#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;

// A daemon whose config allows mounts under `root` (and says `more`).
DaemonOptions AllowMountsUnder(const TempDir& dir, const fs::path& root, bool golden_snapshots = false,
                               const std::string& more = "") {
  const fs::path config = dir.path() / "agentvmd.yaml";
  std::ofstream(config) << "mount_roots:\n  - " << root.string() << "\n" << more;
  return DaemonOptions{.extra_args = {"--config", config.string()}, .golden_snapshots = golden_snapshots};
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

// A tmpfs mounted nosuid,nodev at `path`: the mount roots' file system, as
// agentvmd requires of a read-write mount's source. Unmounted when the test
// is done (after the daemon and its virtiofsds are gone).
class NosuidTmpfs {
 public:
  explicit NosuidTmpfs(const fs::path& path) : path_(path) {
    fs::create_directories(path_);
    auto mounted = RunCommand({"mount", "-t", "tmpfs", "-o", "nosuid,nodev,size=256m,mode=0755", "tmpfs", path_});
    mounted_ = mounted.exit_code == 0;
    EXPECT_TRUE(mounted_) << "mount a tmpfs at " << path_ << ": " << mounted.err;
  }
  ~NosuidTmpfs() {
    if (mounted_) RunCommand({"umount", "--lazy", path_});
  }
  NosuidTmpfs(const NosuidTmpfs&) = delete;
  NosuidTmpfs& operator=(const NosuidTmpfs&) = delete;

 private:
  std::string path_;
  bool mounted_ = false;
};

class VmWorkspaceMountTest : public ::testing::Test {
 protected:
  explicit VmWorkspaceMountTest(bool golden_snapshots = false, const std::string& more_config = "")
      : local_("avm-mnt"),
        roots_(local_.path() / "roots"),
        daemon_(AllowMountsUnder(local_, local_.path() / "roots", golden_snapshots, more_config)) {
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

  // `agentvm create ARGS` run as uid/gid kCaller: the socket, the test's
  // directories and the paths to them are opened to everyone for it.
  std::string CreateVmAsCaller(const std::vector<std::string>& args) {
    ::chmod(daemon_.socket().c_str(), 0666);
    const fs::path tmp = fs::temp_directory_path();
    for (fs::path start : {fs::path(daemon_.socket()).parent_path(), local_.path()}) {
      for (fs::path dir = start; dir.has_parent_path() && dir != tmp && dir != dir.root_path(); dir = dir.parent_path()) {
        struct stat st {};
        if (::stat(dir.c_str(), &st) == 0) ::chmod(dir.c_str(), (st.st_mode & 07777) | 0005);
      }
    }
    std::vector<std::string> argv = {"setpriv", "--reuid=" + std::to_string(kCaller), "--regid=" + std::to_string(kCaller),
                                     "--clear-groups", BinPath("agentvm"), "--socket", daemon_.socket(), "create"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto created = RunCommand(argv, std::chrono::seconds(180));
    EXPECT_EQ(created.exit_code, 0) << created.err << daemon_.Log();
    std::string id = created.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return created.exit_code == 0 ? id : "";
  }

  static constexpr std::uint32_t kCaller = 4242;
  TempDir local_;
  NosuidTmpfs roots_;
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

  // Guest -> host: the guest's default user writes as the caller (root
  // here; ACallersMountIsTheCallers has another).
  auto wrote = Exec(id, "echo from the guest > /workspace/result.txt");
  ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
  EXPECT_EQ(ReadFile(rw_ / "result.txt"), "from the guest\n");
  struct stat st {};
  ASSERT_EQ(::stat((rw_ / "result.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);

  // Read-only: refused in the guest, unchanged on the host.
  auto refused = Exec(id, "echo changed > /data/keep.txt");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("Read-only file system"), std::string::npos) << refused.err;
  EXPECT_NE(Exec(id, "touch /data/new").exit_code, 0);
  EXPECT_EQ(ReadFile(ro_ / "keep.txt"), "read only\n");
  EXPECT_FALSE(fs::exists(ro_ / "new"));

  EXPECT_FALSE(Virtiofsds(daemon_).empty());
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);
  EXPECT_TRUE(WaitUntil([&] { return Virtiofsds(daemon_).empty(); })) << Virtiofsds(daemon_);
}
// The VM of a caller who is not root: the CLI run as uid 4242.
TEST_F(VmWorkspaceMountTest, ACallersMountIsTheCallers) {
  ASSERT_EQ(::chown(rw_.c_str(), kCaller, kCaller), 0);
  std::ofstream(rw_ / "roots-file") << "the host root's\n";
  const std::string id = CreateVmAsCaller({"-v", rw_.string() + ":/workspace"});
  ASSERT_FALSE(id.empty());
  auto [status, vm] = daemon_.Http("GET", "/v1/vms/" + id);
  EXPECT_NE(vm.find(R"("mount_owner":{"uid":4242,"gid":4242})"), std::string::npos) << vm;

  // The tiny image's default user (root) writes as the caller, and sees the
  // caller's files as its own.
  auto wrote = Exec(id, "echo mine > /workspace/new && mkdir /workspace/dir && stat -c %u /workspace");
  ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
  EXPECT_EQ(wrote.out, "0\n");
  for (const char* name : {"new", "dir"}) {
    struct stat st {};
    ASSERT_EQ(::stat((rw_ / name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, kCaller) << name;
    EXPECT_EQ(st.st_gid, kCaller) << name;
  }
  // The host root's file is nobody's in the guest, and closed to it, root
  // or not: virtiofsd has no rights over files of an unmapped owner.
  auto theirs = Exec(id, "stat -c %u /workspace/roots-file; echo changed > /workspace/roots-file");
  EXPECT_NE(theirs.exit_code, 0);
  EXPECT_EQ(theirs.out, "65534\n") << theirs.err;
  EXPECT_EQ(ReadFile(rw_ / "roots-file"), "the host root's\n");
  // No other guest user exists on the host: it cannot create files, even
  // where the guest's modes let it.
  ASSERT_EQ(Exec(id, "chmod 777 /workspace").exit_code, 0);
  auto other = Exec(id, "touch /workspace/by-1000", "1000");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.err.find("Invalid argument"), std::string::npos) << other.err;
  EXPECT_FALSE(fs::exists(rw_ / "by-1000"));
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);
}

// The debian image's default user (agent, 1000) is the caller on the host;
// its root is squashed to a uid of the jail's range; git works in the mount.
TEST_F(VmWorkspaceMountTest, OnDebianTheAgentWritesAsTheCallerAndRootIsSquashed) {
  ASSERT_EQ(::chown(rw_.c_str(), kCaller, kCaller), 0);
  const std::string id = CreateVmAsCaller({"--image", "debian", "--memory", "512", "-v", rw_.string() + ":/workspace"});
  ASSERT_FALSE(id.empty());
  auto git = Exec(id,
                  "cd /workspace && git init -q && echo hi > a && git add a && "
                  "git -c user.name=t -c user.email=t@t commit -q -m one && echo more >> a && git status --short");
  ASSERT_EQ(git.exit_code, 0) << git.err;
  EXPECT_EQ(git.out, " M a\n?? hello.txt\n");  // hello.txt: the host's, from the fixture
  struct stat st {};
  ASSERT_EQ(::stat((rw_ / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kCaller);
  ASSERT_EQ(::stat((rw_ / ".git" / "HEAD").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kCaller);

  auto as_root = Exec(id, "touch /workspace/by-root && stat -c %u /workspace/by-root", "root");
  ASSERT_EQ(as_root.exit_code, 0) << as_root.err;
  EXPECT_EQ(as_root.out, "0\n");  // root's own, in the guest
  ASSERT_EQ(::stat((rw_ / "by-root").c_str(), &st), 0);
  EXPECT_GE(st.st_uid, 200000u) << "guest root wrote as host uid " << st.st_uid;  // the jail's uid_base
  EXPECT_LT(st.st_uid, 200000u + 4096u);
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);
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

  // A setuid-root program the guest's root leaves on the mount (the static
  // busybox, which runs on the host too) gives a host user nothing: the
  // source's file system is nosuid, as agentvmd demands of read-write
  // mounts. Run as nobody, it stays nobody.
  // (Named busybox: it picks its applet from its name, "id" comes next.)
  auto suid = Exec(id, "cp /bin/busybox /workspace/busybox && chmod 4755 /workspace/busybox");
  ASSERT_EQ(suid.exit_code, 0) << suid.err;
  ::chmod(local_.path().c_str(), 0755);  // nobody must reach it to try
  auto as_nobody = RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               (rw_ / "busybox").string(), "id", "-u"});
  EXPECT_EQ(as_nobody.exit_code, 0) << as_nobody.err;
  EXPECT_EQ(as_nobody.out, "65534\n") << "a guest's setuid-root file ran as root on the host";
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

// With golden snapshots: a VM with mounts is a clone whose virtiofs devices
// are hot-plugged after the restore (docs/workspaces.md, "Snapshots and pools").
class VmWorkspaceRestoreTest : public VmWorkspaceMountTest {
 protected:
  explicit VmWorkspaceRestoreTest(const std::string& more_config = "") : VmWorkspaceMountTest(true, more_config) {}

  // POST /v1/vms with boot restore and the two mounts: the VM's JSON.
  nlohmann::json CreateRestored() {
    const nlohmann::json request = {
        {"boot", "restore"},
        {"mounts",
         {{{"source", rw_.string()}, {"target", "/workspace"}},
          {{"source", ro_.string()}, {"target", "/data"}, {"readonly", true}}}}};
    auto [status, body] = daemon_.Http("POST", "/v1/vms", request.dump());
    EXPECT_EQ(status, 201) << body << daemon_.Log();
    return nlohmann::json::parse(body, nullptr, false);
  }

  // How many fds of the daemon are a memfd called `name`.
  int DaemonMemfds(const std::string& name) const {
    auto pid = RunCommand({"pgrep", "-f", "agentvmd .*--socket " + daemon_.socket()});
    EXPECT_EQ(pid.exit_code, 0) << pid.err;
    int count = 0;
    std::error_code ec;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(std::atoi(pid.out.c_str())) + "/fd", ec)) {
      if (fs::read_symlink(fd.path(), ec).string().starts_with("/memfd:" + name)) ++count;
    }
    return count;
  }
};

TEST_F(VmWorkspaceRestoreTest, AVmWithMountsRestoresAndItsMountsWorkBothWays) {
  const nlohmann::json vm = CreateRestored();
  const std::string id = vm.value("id", "");
  ASSERT_FALSE(id.empty()) << vm.dump();
  EXPECT_EQ(vm.value("boot", ""), "restore") << "restore_error: " << vm.value("restore_error", "") << daemon_.Log();
  EXPECT_EQ(vm.value("restore_error", ""), "");

  auto read = Exec(id, "cat /workspace/hello.txt /data/keep.txt");
  EXPECT_EQ(read.out, "written on the host\nread only\n") << read.err << daemon_.Log();
  auto wrote = Exec(id, "echo from the clone > /workspace/result.txt");
  ASSERT_EQ(wrote.exit_code, 0) << wrote.err;
  EXPECT_EQ(ReadFile(rw_ / "result.txt"), "from the clone\n");
  // A host edit shows in the guest (virtiofs_cache auto: within about a second).
  std::ofstream(rw_ / "later.txt") << "after the restore\n";
  EXPECT_TRUE(WaitUntil([&] { return Exec(id, "cat /workspace/later.txt").out == "after the restore\n"; },
                        std::chrono::seconds(5)));
  EXPECT_NE(Exec(id, "touch /data/new").exit_code, 0) << "the read-only mount took a write";
  EXPECT_FALSE(fs::exists(ro_ / "new"));

  // The RAM copy is QEMU's alone: the daemon keeps no fd of it.
  EXPECT_EQ(DaemonMemfds("agentvm-guest-ram"), 0);
  EXPECT_FALSE(Virtiofsds(daemon_).empty());
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id}).exit_code, 0);
  EXPECT_TRUE(WaitUntil([&] { return Virtiofsds(daemon_).empty(); })) << Virtiofsds(daemon_);
  EXPECT_NE(RunCommand({"pgrep", "-f", "guest=" + id}).exit_code, 0) << "its QEMU still runs";
  EXPECT_FALSE(fs::exists(fs::path(daemon_.run_dir()) / "vms" / id)) << "its sockets are left";
}

// A virtiofsd that is gone before its device is added, on the restore's
// attempt only: a fake virtiofsd that exits at once the first time it runs
// and is the real one afterwards.
constexpr char kDiesOnceVirtiofsd[] = "dies-once-virtiofsd";

class VmWorkspaceRestoreFailureTest : public VmWorkspaceRestoreTest {
 protected:
  VmWorkspaceRestoreFailureTest()
      : VmWorkspaceRestoreTest("virtiofsd: " + (fs::temp_directory_path() / kDiesOnceVirtiofsd).string() + "\n") {}

  void SetUp() override {
    // Made for the jail's uid (root of its own user namespace, nobody's
    // files on the host): readable, and the marker's dir writable, by all.
    fs::create_directories(marker_dir_);
    ::chmod(marker_dir_.c_str(), 0777);
    ::chmod(local_.path().c_str(), 0755);
    std::ofstream(script_) << "#!/bin/sh\n"
                           << "[ -e " << (marker_dir_ / "ran").string() << " ] && exec /usr/lib/qemu/virtiofsd \"$@\"\n"
                           << "touch " << (marker_dir_ / "ran").string() << "\n";
    ::chmod(script_.c_str(), 0755);
  }
  void TearDown() override { fs::remove(script_); }

  const fs::path script_ = fs::temp_directory_path() / kDiesOnceVirtiofsd;
  const fs::path marker_dir_ = local_.path() / "marker";
};

TEST_F(VmWorkspaceRestoreFailureTest, AFailedHotPlugColdBootsSayingWhyAndTheVmWorks) {
  const nlohmann::json vm = CreateRestored();
  const std::string id = vm.value("id", "");
  ASSERT_FALSE(id.empty()) << vm.dump();
  EXPECT_EQ(vm.value("state", ""), "running");
  EXPECT_EQ(vm.value("boot", ""), "cold") << vm.dump();
  EXPECT_NE(vm.value("restore_error", "").find("device_add"), std::string::npos) << vm.dump();
  auto read = Exec(id, "cat /workspace/hello.txt && echo from the cold boot > /workspace/cold.txt");
  EXPECT_EQ(read.out, "written on the host\n") << read.err << daemon_.Log();
  EXPECT_EQ(ReadFile(rw_ / "cold.txt"), "from the cold boot\n");

  // The snapshot was not to blame: it stays, and the next VM restores.
  const nlohmann::json next = CreateRestored();
  EXPECT_EQ(next.value("boot", ""), "restore") << next.dump();
  const std::string source = "source=" + fs::canonical(rw_).string();
  ASSERT_EQ(daemon_.Cli({"rm", "-f", id, next.value("id", "")}).exit_code, 0);
  EXPECT_TRUE(WaitUntil([&] { return RunCommand({"pgrep", "-f", source}).exit_code != 0; }))
      << RunCommand({"pgrep", "-af", source}).out;
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
  // Under a root but on a file system without nosuid (the test's /tmp):
  // refused read-write, saying why.
  const std::string ok = (local.path() / "roots" / "ok").string();
  ASSERT_FALSE(IsMountedNosuid(ok)) << "this test needs " << ok << " on a file system mounted suid";
  auto [suid_status, suid_answer] = daemon.Http("POST", "/v1/vms", body(ok));
  EXPECT_EQ(suid_status, 400) << suid_answer;
  EXPECT_NE(suid_answer.find("nosuid"), std::string::npos) << suid_answer;
  auto [status, answer] = daemon.Http("POST", "/v1/vms", R"({"mounts": [{"source": "/x", "target": "../etc"}]})");
  EXPECT_EQ(status, 400) << answer;
  EXPECT_EQ(daemon.Http("GET", "/v1/vms").second.find("\"id\""), std::string::npos) << "no VM was made";
}

}  // namespace
}  // namespace agentvm::testing
