#include "supervisor/jail_spawn.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>

namespace agentvm {
namespace {

// The child's steps, named in the error a failed one returns.
enum Step : int {
  kJoinCgroup, kPrivateMounts, kMountRoot, kMakeDir, kMakeMountPoint, kBind, kRemount, kSymlink,
  kMountProc, kSealRoot, kPivot, kRlimit, kDropCaps, kSetIds, kNoNewPrivs, kStdio, kExec, kStepCount
};
constexpr const char* kStepNames[kStepCount] = {
    "join cgroup", "make mounts private", "mount tmpfs root", "make directory", "make mount point",
    "bind mount", "remount bind", "symlink", "mount proc", "remount root read-only", "pivot_root", "setrlimit",
    "drop capabilities", "set uid/gid", "set no_new_privs", "set up stdio", "exec"};

struct ChildMount {
  const char* source;
  const char* target;
  bool directory;
  unsigned long remount_flags;
};

// The plan, flattened into what the child reads: C strings owned by the
// vectors of strings in ChildPlan's owner, which outlive the clone.
struct ChildPlan {
  std::vector<int> cgroup_fds;
  const char* root = nullptr;
  std::vector<std::string> dirs;  // absolute, under root
  std::vector<std::string> targets;
  std::vector<ChildMount> mounts;
  std::vector<std::pair<std::string, std::string>> symlinks;  // (link target, link path under root)
  std::string proc;  // where the jail's proc goes (under root); empty: none
  std::vector<JailRlimit> rlimits;
  int last_cap = CAP_LAST_CAP;
  uid_t uid = 0;
  gid_t gid = 0;
  int stdin_fd = -1, stderr_fd = -1, error_fd = -1;
  std::vector<int> pass_fds;
  const char* program = nullptr;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

int LastCap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int cap = CAP_LAST_CAP;
  in >> cap;
  return cap;
}

[[noreturn]] void ChildFail(int error_fd, int step) {
  const int message[2] = {step, errno};
  (void)!::write(error_fd, message, sizeof message);
  ::_exit(127);
}

// Runs in the cloned child: system calls only.
[[noreturn]] void RunChild(const ChildPlan& p) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for KILL/STOP
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  const int err = p.error_fd;
  // First, so even the setup below is charged to the VM.
  for (int fd : p.cgroup_fds) {
    if (::write(fd, "0", 1) != 1) ChildFail(err, kJoinCgroup);
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail(err, kPrivateMounts);
  if (::mount("tmpfs", p.root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") != 0) {
    ChildFail(err, kMountRoot);
  }
  for (const auto& dir : p.dirs) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) ChildFail(err, kMakeDir);
  }
  for (const auto& m : p.mounts) {
    if (m.directory) {
      if (::mkdir(m.target, 0755) != 0 && errno != EEXIST) ChildFail(err, kMakeMountPoint);
    } else {
      const int fd = ::open(m.target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) ChildFail(err, kMakeMountPoint);
      ::close(fd);
    }
    if (::mount(m.source, m.target, nullptr, MS_BIND, nullptr) != 0) ChildFail(err, kBind);
    if (::mount(nullptr, m.target, nullptr, MS_REMOUNT | MS_BIND | m.remount_flags, nullptr) != 0) {
      ChildFail(err, kRemount);
    }
  }
  for (const auto& [target, path] : p.symlinks) {
    if (::symlink(target.c_str(), path.c_str()) != 0) ChildFail(err, kSymlink);
  }
  // This child is PID 1 of its namespace, so the proc it mounts shows only
  // the jail; subset=pid leaves out /proc/sys, /proc/kcore and the rest.
  if (!p.proc.empty()) {
    if (::mkdir(p.proc.c_str(), 0555) != 0 && errno != EEXIST) ChildFail(err, kMountProc);
    if (::mount("proc", p.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") != 0) {
      ChildFail(err, kMountProc);
    }
  }
  if (::mount(nullptr, p.root, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    ChildFail(err, kSealRoot);
  }
  // pivot_root(".", ".") stacks the old root under the new one; detaching
  // it leaves nothing of the host's tree reachable.
  if (::chdir(p.root) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 || ::umount2(".", MNT_DETACH) != 0 ||
      ::chdir("/") != 0) {
    ChildFail(err, kPivot);
  }
  for (const auto& limit : p.rlimits) {
    const rlimit value{limit.value, limit.value};
    if (::setrlimit(limit.resource, &value) != 0) ChildFail(err, kRlimit);
  }
  // The bounding set needs CAP_SETPCAP, so it goes while we are still root.
  for (int cap = 0; cap <= p.last_cap; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) ChildFail(err, kDropCaps);
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) ChildFail(err, kDropCaps);
  // Raw system calls: glibc's wrappers would try to change every thread of
  // the parent, which this child does not have.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0 ||
      ::syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) {
    ChildFail(err, kSetIds);
  }
  // Leaving uid 0 cleared permitted and effective; say so explicitly anyway.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, data) != 0) ChildFail(err, kDropCaps);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(err, kNoNewPrivs);

  if (::dup2(p.stdin_fd, 0) < 0 || ::dup2(p.stdin_fd, 1) < 0 || ::dup2(p.stderr_fd, 2) < 0) {
    ChildFail(err, kStdio);
  }
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  for (int fd : p.pass_fds) ::fcntl(fd, F_SETFD, 0);
  ::execve(p.program, p.argv.data(), p.envp.data());
  ChildFail(err, kExec);
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_;
};

Result<Fd> OpenOrFail(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0640);
  if (fd < 0) return Fail(ErrnoError("jail: open " + path, errno));
  return Fd(fd);
}

}  // namespace

Result<SpawnedChild> SpawnJailed(const JailPlan& plan, const JailedSpawn& spawn) {
  if (spawn.argv.empty()) return Fail(ErrorCode::kInvalidArgument, "jail: empty argv");
  std::vector<Fd> owned;  // closed in the parent once the child has its copies
  ChildPlan child;
  for (const auto& procs : plan.cgroups.join) {
    auto fd = OpenOrFail(procs, O_WRONLY);
    if (!fd) return Fail(fd.error());
    child.cgroup_fds.push_back(fd->get());
    owned.push_back(std::move(*fd));
  }
  child.root = plan.root_dir.c_str();
  for (const auto& dir : plan.dirs) child.dirs.push_back(plan.root_dir + dir);
  child.targets.reserve(plan.mounts.size());
  for (const auto& mount : plan.mounts) child.targets.push_back(plan.root_dir + mount.target);
  for (std::size_t i = 0; i < plan.mounts.size(); ++i) {
    const BindMount& mount = plan.mounts[i];
    unsigned long flags = MS_NOSUID;
    if (!mount.device) flags |= MS_NODEV;
    if (mount.read_only) flags |= MS_RDONLY;
    child.mounts.push_back({mount.source.c_str(), child.targets[i].c_str(), mount.directory, flags});
  }
  for (const auto& link : plan.symlinks) child.symlinks.emplace_back(link.link_target, plan.root_dir + link.path);
  if (plan.mount_proc) child.proc = plan.root_dir + "/proc";
  child.rlimits = plan.rlimits;
  child.last_cap = LastCap();
  child.uid = plan.uid;
  child.gid = plan.gid;

  auto null_fd = OpenOrFail("/dev/null", O_RDWR);
  if (!null_fd) return Fail(null_fd.error());
  auto err_fd = OpenOrFail(spawn.stderr_path.empty() ? "/dev/null" : spawn.stderr_path,
                           O_WRONLY | O_CREAT | O_APPEND);
  if (!err_fd) return Fail(err_fd.error());
  child.stdin_fd = null_fd->get();
  child.stderr_fd = err_fd->get();
  child.pass_fds = spawn.pass_fds;
  child.program = plan.program.c_str();
  std::vector<std::string> argv = spawn.argv;
  argv[0] = plan.program;
  for (auto& arg : argv) child.argv.push_back(arg.data());
  child.argv.push_back(nullptr);
  // QEMU needs no environment; the daemon's is none of its business.
  std::string path_env = "PATH=/usr/bin:/bin";
  child.envp = {path_env.data(), nullptr};

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Fail(ErrnoError("jail: pipe", errno));
  Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);
  child.error_fd = write_end.get();

  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  // No signal handler of the daemon's may run in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) RunChild(child);
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return Fail(ErrnoError("jail: clone3", clone_errno));

  write_end.Close();
  int message[2] = {0, 0};
  ssize_t got;
  do {
    got = ::read(read_end.get(), message, sizeof message);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return SpawnedChild{.pid = static_cast<pid_t>(pid), .pidfd = pidfd};

  // The child failed before exec and has exited with 127.
  ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  ::close(pidfd);
  if (got != sizeof message || message[0] < 0 || message[0] >= kStepCount) {
    return Fail(ErrorCode::kInternal, "jail: the child failed before exec");
  }
  return Fail(ErrnoError("jail setup of " + plan.vm_id + ": " + kStepNames[message[0]], message[1]));
}

}  // namespace agentvm
