#include "supervisor/virtiofsd.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <vector>

#include "common/logging.h"
#include "supervisor/child_process.h"
#include "supervisor/kernel_file.h"
#include "supervisor/process_identity.h"
#include "supervisor/unix_listener.h"

namespace agentvm {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("virtiofsd"); }

// The fd number virtiofsd finds its listening socket under (--fd).
constexpr int kListenFd = 3;
// argv[0] of every virtiofsd: "<run_dir>/vms/<id>/fs<N>.sock".
constexpr char kSocketSuffix[] = ".sock";

class ChildVirtiofsd final : public VirtiofsdProcess {
 public:
  explicit ChildVirtiofsd(std::unique_ptr<ChildProcess> child) : child_(std::move(child)) {}
  pid_t pid() const override { return child_->pid(); }

 private:
  std::unique_ptr<ChildProcess> child_;  // its destructor kills and reaps
};

// A listening socket at `path` and a connection to it: virtiofsd accepts the
// one QEMU will speak on. The path is gone again when this returns.
Result<std::pair<UniqueFd, UniqueFd>> ListenAndConnect(const std::string& path) {
  auto listener = ListenUnix(path, 1);
  auto client = listener ? ConnectUnix(path) : Result<UniqueFd>(Fail(listener.error()));
  ::unlink(path.c_str());
  if (!client) return Fail(client.error().Wrap("virtiofsd"));
  return std::pair{std::move(*listener), std::move(*client)};
}

// Writes the child's uid_map and gid_map (root of the host's user
// namespace may map any host id; no setgroups "deny" is needed).
Result<void> WriteIdMaps(pid_t pid, const VirtiofsdIdMaps& ids) {
  const std::string proc = "/proc/" + std::to_string(pid);
  if (auto uids = WriteKernelFile(proc + "/uid_map", IdMapText(ids.uids)); !uids) return uids;
  return WriteKernelFile(proc + "/gid_map", IdMapText(ids.gids));
}

[[noreturn]] void ChildFail(int error_fd) {
  const int err = errno;
  (void)!::write(error_fd, &err, sizeof err);
  ::_exit(127);
}

}  // namespace

Result<VirtiofsdIdMaps> MountIdMaps(UserIds owner, UserIds guest_default, UserIds squash) {
  // Guest root is the owner when root is the default user (no second guest
  // user to squash), else the squash id; uids and gids alike.
  auto map = [](std::uint32_t owner_id, std::uint32_t default_id, std::uint32_t squash_id) {
    return default_id == 0 ? std::vector<IdMapping>{{0, owner_id}}
                           : std::vector<IdMapping>{{0, squash_id}, {default_id, owner_id}};
  };
  if ((guest_default.uid != 0 && owner.uid == squash.uid) || (guest_default.gid != 0 && owner.gid == squash.gid)) {
    return Fail(ErrorCode::kInvalidArgument, "mount owner " + std::to_string(owner.uid) + ":" +
                                                 std::to_string(owner.gid) +
                                                 " is the id guest root is squashed to; pick another owner");
  }
  return VirtiofsdIdMaps{.uids = map(owner.uid, guest_default.uid, squash.uid),
                         .gids = map(owner.gid, guest_default.gid, squash.gid)};
}

std::string IdMapText(const std::vector<IdMapping>& map) {
  std::string text;
  for (const IdMapping& line : map) text += std::to_string(line.inside) + " " + std::to_string(line.outside) + " 1\n";
  return text;
}

std::vector<std::string> VirtiofsdArgv(const VirtiofsdLaunch& launch) {
  return {
      launch.socket_path,
      "--fd=" + std::to_string(kListenFd),
      "-o", "source=" + launch.source,
      "-o", "sandbox=namespace",
      // Device nodes made by the guest would be usable on the host.
      "-o", "modcaps=-mknod",
      "-o", "cache=" + launch.cache,
      "-o", "no_xattr",
      "-o", "log_level=warn",
  };
}

Result<StartedVirtiofsd> LaunchVirtiofsd(boost::asio::any_io_executor executor, const VirtiofsdLaunch& launch,
                                         const std::optional<VirtiofsdJail>& jail) {
  auto sockets = ListenAndConnect(launch.socket_path);
  if (!sockets) return Fail(sockets.error());
  auto& [listener, qemu_end] = *sockets;

  // Everything the child needs, made before the fork: after it, only
  // system calls.
  const std::vector<std::string> args = VirtiofsdArgv(launch);
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  UniqueFd log(::open(launch.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return Fail(ErrnoError("virtiofsd: open " + launch.log_path, errno));
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) return Fail(ErrnoError("virtiofsd: pipe", errno));
  UniqueFd error_read(error_pipe[0]), error_write(error_pipe[1]);
  // Jailed: the child says it has a user namespace (a byte on `unshared`),
  // the daemon puts it in its cgroups and writes its maps, then lets it go
  // on (a byte on `mapped`).
  int unshared_pipe[2], mapped_pipe[2];
  if (::pipe2(unshared_pipe, O_CLOEXEC) != 0) return Fail(ErrnoError("virtiofsd: pipe", errno));
  UniqueFd unshared_read(unshared_pipe[0]), unshared_write(unshared_pipe[1]);
  if (::pipe2(mapped_pipe, O_CLOEXEC) != 0) return Fail(ErrnoError("virtiofsd: pipe", errno));
  UniqueFd mapped_read(mapped_pipe[0]), mapped_write(mapped_pipe[1]);
  const bool user_namespace = jail.has_value();
  const char* source = launch.source.c_str();
  const char* binary = launch.binary.c_str();
  const unsigned long bind_flags =
      MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (launch.readonly ? MS_RDONLY : 0);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("virtiofsd: fork", errno));
  if (pid == 0) {
    // Out of the way of 0-3 first, so no dup2 below overwrites a source.
    const int error_fd = ::fcntl(error_write.get(), F_DUPFD_CLOEXEC, 10);
    const int listen_fd = ::fcntl(listener.get(), F_DUPFD_CLOEXEC, 10);
    const int null_fd = ::fcntl(null.get(), F_DUPFD_CLOEXEC, 10);
    const int log_fd = ::fcntl(log.get(), F_DUPFD_CLOEXEC, 10);
    if (error_fd < 0) ::_exit(127);
    if (listen_fd < 0 || null_fd < 0 || log_fd < 0) ChildFail(error_fd);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ChildFail(error_fd);
    if (::unshare(CLONE_NEWNS) != 0) ChildFail(error_fd);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail(error_fd);
    if (::mount(source, source, nullptr, MS_BIND | MS_REC, nullptr) != 0) ChildFail(error_fd);
    if (::mount(nullptr, source, nullptr, bind_flags, nullptr) != 0) ChildFail(error_fd);
    if (user_namespace) {
      // Made after the mounts, which the host's root makes: in the new
      // namespace they are locked (virtiofsd cannot undo nosuid or ro).
      ::close(unshared_read.get());
      ::close(mapped_write.get());
      char byte = 0;
      if (::unshare(CLONE_NEWUSER) != 0 || ::write(unshared_write.get(), &byte, 1) != 1) ChildFail(error_fd);
      if (::read(mapped_read.get(), &byte, 1) != 1) ::_exit(127);  // the daemon gave up on it
      // Root of the new namespace, without the host root's groups. Raw
      // system calls: glibc's wrappers signal threads this child lacks.
      if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, 0, 0, 0) != 0 ||
          ::syscall(SYS_setresuid, 0, 0, 0) != 0) {
        ChildFail(error_fd);
      }
      // A new effective uid clears the parent-death signal.
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ChildFail(error_fd);
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(error_fd);
    if (::dup2(null_fd, 0) != 0 || ::dup2(null_fd, 1) != 1 || ::dup2(log_fd, 2) != 2 ||
        ::dup2(listen_fd, kListenFd) != kListenFd) {
      ChildFail(error_fd);
    }
    // The rest closes on exec, the error pipe too: an exec that works closes it.
    ::close_range(kListenFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv(binary, argv.data());
    ChildFail(error_fd);
  }
  error_write.reset();
  unshared_write.reset();
  mapped_read.reset();
  auto fail = [&](Error error) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Fail(std::move(error));
  };
  if (user_namespace) {
    char byte = 0;
    // No byte: the child failed before, and says why on the error pipe.
    if (::read(unshared_read.get(), &byte, 1) == 1) {
      for (const std::string& procs : jail->cgroup_procs) {
        if (auto joined = WriteKernelFile(procs, std::to_string(pid)); !joined) return fail(joined.error());
      }
      if (auto mapped = WriteIdMaps(pid, jail->ids); !mapped) return fail(mapped.error().Wrap("virtiofsd"));
      if (::write(mapped_write.get(), &byte, 1) != 1) return fail(ErrnoError("virtiofsd: pipe write", errno));
    }
  }
  int child_errno = 0;
  const ssize_t got = ::read(error_read.get(), &child_errno, sizeof child_errno);
  if (got > 0) {
    ::waitpid(pid, nullptr, 0);
    return Fail(ErrnoError("virtiofsd for " + launch.source + ": set up and exec " + launch.binary, child_errno));
  }
  auto process = ChildProcess::TakeOver(std::move(executor), pid);
  if (!process) return Fail(process.error().Wrap("virtiofsd"));
  Log()->info("{}: virtiofsd pid {} serves {}{}", launch.vm_id, pid, launch.source,
              launch.readonly ? " read-only" : "");
  return StartedVirtiofsd{
      .process = std::make_unique<ChildVirtiofsd>(std::move(*process)),
      .qemu_end = std::move(qemu_end),
  };
}

void KillLeftoverVirtiofsds(const std::string& run_vms_dir) {
  for (pid_t pid : ProcessesWithArg(run_vms_dir)) {
    const std::string command = ProcessCommandLine(pid);
    // argv[0] is the first NUL-terminated word.
    const std::string argv0 = command.substr(0, command.find('\0'));
    if (!argv0.starts_with(run_vms_dir) || !argv0.ends_with(kSocketSuffix)) continue;
    Log()->warn("killing virtiofsd pid {} left by an earlier agentvmd ({})", pid, argv0);
    KillStranger(pid);
  }
}

}  // namespace agentvm
