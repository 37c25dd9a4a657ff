#include "guest-images/agent/spawn.h"

#include <fcntl.h>
#include <linux/sched.h>
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
  bool join_cgroup = false;  // the child moves itself into plan->cgroup_fd
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
  // Born elsewhere (no clone3): before the credentials change, since
  // cgroup.procs is root's to write.
  if (args->join_cgroup) {
    int procs = ::openat(plan.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (procs < 0 || ::write(procs, "0", 1) != 1) Fail(args, Step::kCgroup, errno);
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

// clone3() with the child running fn(arg) on the stack `args` names (glibc
// 2.36 wraps clone3 for its own threads only). Returns the child's pid in
// the parent, or -errno; -ENOSYS where it is not written for the CPU.
long Clone3(clone_args* args, int (*fn)(void*), void* arg) {
#if defined(__x86_64__)
  // The kernel starts the child with the parent's registers, rax = 0 and
  // rsp = the new stack's top (16-byte aligned, as a call wants it).
  register long fn_reg asm("r12") = reinterpret_cast<long>(fn);
  register long arg_reg asm("r13") = reinterpret_cast<long>(arg);
  long ret;
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xor %%ebp, %%ebp\n\t"  // the child: no frame above this one
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov %[exit_nr], %%eax\n\t"
      "syscall\n\t"
      "ud2\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"(SYS_clone3), "D"(args), "S"(sizeof(clone_args)), "r"(fn_reg), "r"(arg_reg), [exit_nr] "i"(SYS_exit)
      : "rcx", "r11", "memory");
  return ret;
#else
  (void)args, (void)fn, (void)arg;
  return -ENOSYS;
#endif
}

}  // namespace

std::expected<pid_t, SpawnFailure> Spawn(const SpawnPlan& plan) {
  auto args = std::make_unique<ChildArgs>();
  args->plan = &plan;
  for (const std::string& a : plan.argv) args->argv.push_back(const_cast<char*>(a.c_str()));
  args->argv.push_back(nullptr);
  for (const std::string& e : plan.env) args->envp.push_back(const_cast<char*>(e.c_str()));
  args->envp.push_back(nullptr);
  // Not zero-filled: under TCG a 64 KiB memset per exec cost more than the
  // rest of the launch together.
  auto stack = std::make_unique_for_overwrite<char[]>(kChildStackBytes);

  // No signal handler may run in the child before it has reset them.
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = -ENOSYS;
  if (plan.cgroup_fd >= 0) {
    clone_args clone{};
    clone.flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP;
    clone.exit_signal = SIGCHLD;
    clone.stack = reinterpret_cast<std::uint64_t>(stack.get());
    clone.stack_size = kChildStackBytes;
    clone.cgroup = static_cast<std::uint64_t>(plan.cgroup_fd);
    pid = Clone3(&clone, ChildMain, args.get());
  }
  if (pid == -ENOSYS) {
    args->join_cgroup = plan.cgroup_fd >= 0;
    pid = ::clone(ChildMain, stack.get() + kChildStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD, args.get());
    if (pid < 0) pid = -errno;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    // clone3 refuses a cgroup it cannot start in (removed, not a leaf, ...)
    // with its own errno; running out of pids or memory is not about it.
    const int err = static_cast<int>(-pid);
    const bool cgroup = plan.cgroup_fd >= 0 && !args->join_cgroup && err != EAGAIN && err != ENOMEM;
    return std::unexpected(SpawnFailure{cgroup ? SpawnFailure::Step::kCgroup : SpawnFailure::Step::kSetup, err});
  }
  // CLONE_VFORK: we run again once the child exec'd or exited.
  if (args->failed) {
    int status;
    while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
    return std::unexpected(args->failure);
  }
  return static_cast<pid_t>(pid);
}

}  // namespace agentvm::guest
