#include "guest-images/agent/spawn.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <memory>

namespace agentvm::guest {
namespace {

// The child runs on this much stack of its own; it calls nothing that
// needs more.
constexpr std::size_t kChildStackBytes = 64 * 1024;

// Everything the child reads, as plain pointers, and where it reports.
struct ChildArgs {
  const SpawnPlan* plan;
  std::vector<char*> argv;
  std::vector<char*> envp;
  SpawnFailure failure;  // written by the child; read after it exec'd or exited
  bool failed = false;
};

[[noreturn]] void Fail(ChildArgs* args, SpawnFailure::Step step, int err) {
  args->failure = SpawnFailure{step, err};
  args->failed = true;
  ::_exit(127);
}

// In the child. Raw system calls only: glibc's wrappers for setuid and
// friends would coordinate with threads the child does not have.
int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);
  const SpawnPlan& plan = *args->plan;
  using Step = SpawnFailure::Step;

  // Signals the agent ignores (SIGPIPE) or blocked (all, around the clone)
  // must not be inherited by the program.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setsid() < 0) Fail(args, Step::kSetup, errno);
  // Before the credentials change: cgroup.procs is root's to write.
  if (plan.cgroup_procs_fd >= 0 && ::write(plan.cgroup_procs_fd, "0", 1) != 1) {
    Fail(args, Step::kCgroup, errno);
  }
  if (::dup2(plan.stdin_fd, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 || ::dup2(plan.stderr_fd, 2) < 0) {
    Fail(args, Step::kSetup, errno);
  }
  if (plan.controlling_terminal && ::ioctl(0, TIOCSCTTY, 0) < 0) Fail(args, Step::kSetup, errno);
  if (plan.credentials) {
    const Credentials& c = *plan.credentials;
    if (::syscall(SYS_setgroups, c.groups.size(), c.groups.data()) != 0 ||
        ::syscall(SYS_setresgid, c.gid, c.gid, c.gid) != 0 ||
        ::syscall(SYS_setresuid, c.uid, c.uid, c.uid) != 0) {
      Fail(args, Step::kCredentials, errno);
    }
  }
  // After the credentials change, so the user's own permissions apply.
  if (::chdir(plan.cwd.c_str()) != 0) Fail(args, Step::kChdir, errno);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);

  // execvpe's search: a missing candidate moves on; EACCES is remembered
  // and reported if nothing else ran; any other error stops the search.
  int err = ENOENT;
  bool saw_eacces = false;
  for (const std::string& candidate : plan.candidates) {
    ::execve(candidate.c_str(), args->argv.data(), args->envp.data());
    err = errno;
    if (err == EACCES) {
      saw_eacces = true;
    } else if (err != ENOENT && err != ENOTDIR) {
      break;
    }
  }
  if (saw_eacces && (err == ENOENT || err == ENOTDIR)) err = EACCES;
  Fail(args, Step::kExec, err);
}

}  // namespace

std::expected<pid_t, SpawnFailure> Spawn(const SpawnPlan& plan) {
  auto args = std::make_unique<ChildArgs>();
  args->plan = &plan;
  for (const std::string& a : plan.argv) args->argv.push_back(const_cast<char*>(a.c_str()));
  args->argv.push_back(nullptr);
  for (const std::string& e : plan.env) args->envp.push_back(const_cast<char*>(e.c_str()));
  args->envp.push_back(nullptr);
  auto stack = std::make_unique<char[]>(kChildStackBytes);

  // No signal handler may run in the child before it has reset them.
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(ChildMain, stack.get() + kChildStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD,
                      args.get());
  int clone_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return std::unexpected(SpawnFailure{SpawnFailure::Step::kSetup, clone_err});
  // CLONE_VFORK: we run again once the child exec'd or exited.
  if (args->failed) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return std::unexpected(args->failure);
  }
  return pid;
}

}  // namespace agentvm::guest
