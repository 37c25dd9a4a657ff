// Spawn() where clone3 is refused with ENOSYS, as Docker's default seccomp
// profile and kernels before 5.3 do: the child still starts in the exec's
// cgroup (it moves itself there before it execs). A cgroup it cannot join is
// a cgroup error, with clone3 and without. Privileged tier: only root may
// make cgroups.
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>

#include "guest-images/agent/exec_cgroups.h"
#include "guest-images/agent/spawn.h"
#include "guest-images/agent/testing/agent_harness.h"

namespace agentvm::guest {
namespace {

using testing::Cgroup2Mount;

// From here on this process gets ENOSYS for clone3 and nothing else.
bool RefuseClone3() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0;
}

struct Outcome {
  int status = -1;
  std::string out;
};

// In a child process (that cannot clone3 if `without_clone3`):
// Spawn(`script`) into the cgroup `cgroup_fd`, wait for it; its stdout, and
// how the child process ended (0: the program ran and exited 0; 2: Spawn
// failed at the cgroup step).
Outcome SpawnIn(const std::string& script, int cgroup_fd, bool without_clone3) {
  int out[2];
  if (::pipe(out) != 0) return {};
  pid_t tester = ::fork();
  if (tester == 0) {
    ::close(out[0]);
    if (without_clone3 && !RefuseClone3()) ::_exit(3);
    SpawnPlan plan;
    plan.candidates = {"/bin/sh"};
    plan.argv = {"/bin/sh", "-c", script};
    plan.cwd = "/";
    plan.stdin_fd = plan.stderr_fd = ::open("/dev/null", O_RDWR);
    plan.stdout_fd = out[1];
    plan.cgroup_fd = cgroup_fd;
    auto pid = Spawn(plan);
    if (!pid) ::_exit(pid.error().step == SpawnFailure::Step::kCgroup ? 2 : 4);
    int status;
    ::waitpid(*pid, &status, 0);
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 5);
  }
  ::close(out[1]);
  Outcome outcome;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) outcome.out.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status;
  ::waitpid(tester, &status, 0);
  outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

class SpawnWithoutClone3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string mount = Cgroup2Mount();
    ASSERT_FALSE(mount.empty()) << "no cgroup2 mount on this host";
    root_ = mount + "/agentvm-test-spawn-" + std::to_string(::getpid());
    cgroups_ = ExecCgroups::Open(root_);
    ASSERT_NE(cgroups_, nullptr) << root_;
  }
  void TearDown() override {
    cgroups_.reset();  // removes the cgroups it keeps; none of ours is busy
    std::filesystem::remove(root_);
    EXPECT_FALSE(std::filesystem::exists(root_)) << root_;
  }
  std::string root_;
  std::unique_ptr<ExecCgroups> cgroups_;
};

TEST_F(SpawnWithoutClone3Test, TheChildStillRunsInTheExecsCgroup) {
  auto cgroup = cgroups_->Create();
  ASSERT_TRUE(cgroup.has_value()) << cgroup.error().message;
  Outcome outcome = SpawnIn("cat /proc/self/cgroup", (*cgroup)->dir_fd(), true);
  EXPECT_EQ(outcome.status, 0) << outcome.out;
  const std::string leaf = (*cgroup)->path().substr(Cgroup2Mount().size());
  EXPECT_NE(outcome.out.find("0::" + leaf + "\n"), std::string::npos) << outcome.out << " (wanted " << leaf << ")";
  cgroups_->Retire(std::move(*cgroup));
}

TEST_F(SpawnWithoutClone3Test, ARemovedCgroupIsACgroupErrorEitherWay) {
  auto cgroup = cgroups_->Create();
  ASSERT_TRUE(cgroup.has_value()) << cgroup.error().message;
  ASSERT_EQ(::rmdir((*cgroup)->path().c_str()), 0);
  for (bool without_clone3 : {false, true}) {
    Outcome outcome = SpawnIn("true", (*cgroup)->dir_fd(), without_clone3);
    EXPECT_EQ(outcome.status, 2) << "wanted the cgroup step to fail, clone3 refused: " << without_clone3;
  }
}

}  // namespace
}  // namespace agentvm::guest
