#include "guest-images/agent/exec_launch.h"

#include <fcntl.h>
#include <pty.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "guest-images/agent/spawn.h"

namespace agentvm::guest {
namespace {

std::unexpected<protocol::ErrorReply> Refuse(std::string_view code, std::string message) {
  return std::unexpected(protocol::ErrorReply{std::string(code), std::move(message)});
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A login-like environment for `user`: defaults, then the guest's
// /etc/environment (as pam_env gives a login), then who the user is, then
// the request's env on top. A list searched in place rather than a map: it
// holds a dozen entries, and this runs for every exec under emulation.
AgentResult<std::vector<std::string>> Environment(const protocol::ExecRequest& request, const UserInfo& user,
                                                  const UserDatabase& files) {
  std::vector<std::string> env;
  auto set = [&env](std::string_view key, std::string_view value) {
    std::string entry;
    entry.reserve(key.size() + 1 + value.size());
    entry.append(key).append("=").append(value);
    for (std::string& old : env) {
      if (old.size() > key.size() && old.compare(0, key.size(), key) == 0 && old[key.size()] == '=') {
        old = std::move(entry);
        return;
      }
    }
    env.push_back(std::move(entry));
  };
  set("PATH", kBasePath);
  set("LANG", "C.UTF-8");
  if (request.tty) set("TERM", kDefaultTerm);
  for (const auto& [key, value] : ReadEnvironmentFile(files.environment)) set(key, value);
  set("HOME", user.home);
  set("USER", user.name);
  set("LOGNAME", user.name);
  set("SHELL", user.shell);
  for (const auto& [key, value] : request.env) {
    if (key.empty() || key.find('=') != std::string::npos || HasNul(key) || HasNul(value)) {
      return Refuse(protocol::kCodeInvalidArgument, "exec: bad environment variable \"" + key + "\"");
    }
    set(key, value);
  }
  return env;
}

// Where to look for argv[0]: itself if it has a '/', else each directory of
// the child's PATH (execvpe would search the agent's own).
std::vector<std::string> Candidates(const std::string& program, const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return {program};
  std::string_view path = kBasePath;
  for (const std::string& entry : env) {
    if (entry.starts_with("PATH=")) path = std::string_view(entry).substr(5);
  }
  std::vector<std::string> candidates;
  while (true) {
    std::size_t colon = path.find(':');
    std::string_view dir = path.substr(0, colon);
    candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + program);
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return candidates;
}

// Our ends only ever held O_RDONLY or O_WRONLY: no F_GETFL needed.
bool SetNonBlocking(int fd) { return ::fcntl(fd, F_SETFL, O_NONBLOCK) == 0; }

struct Stdio {
  // What the child gets as 0, 1 and 2: fds of `child_end` or `ours`, or
  // /dev/null.
  int child_stdin = -1, child_stdout = -1, child_stderr = -1;
  UniqueFd child_end;  // the stdin pipe's read end, or the terminal's slave
  LaunchedExec ours;
};

AgentResult<void> OpenPipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Refuse(protocol::kCodeInternal, std::string("exec: pipe: ") + std::strerror(errno));
  }
  read_end->reset(fds[0]);
  write_end->reset(fds[1]);
  return {};
}

// Opened once, never closed: an exec whose stdin is empty and already
// closed reads this instead (as `docker exec` without -i does), which costs
// no pipe.
int DevNull() {
  static const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd;
}

AgentResult<Stdio> OpenPipes(bool stdin_needed) {
  Stdio io;
  if (!stdin_needed && DevNull() >= 0) {
    io.child_stdin = DevNull();
  } else if (auto in = OpenPipe(&io.child_end, &io.ours.stdin_fd); !in) {
    return std::unexpected(in.error());
  } else {
    io.child_stdin = io.child_end.get();
  }
  if (auto out = OpenPipe(&io.ours.stdout_fd, &io.ours.stdout_writer); !out) return std::unexpected(out.error());
  if (auto err = OpenPipe(&io.ours.stderr_fd, &io.ours.stderr_writer); !err) return std::unexpected(err.error());
  io.child_stdout = io.ours.stdout_writer.get();
  io.child_stderr = io.ours.stderr_writer.get();
  return io;
}

AgentResult<Stdio> OpenTerminal(protocol::TerminalSize size) {
  int master = -1, slave = -1;
  winsize ws{size.rows, size.cols, 0, 0};
  if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0) {
    return Refuse(protocol::kCodeInternal, std::string("exec: openpty: ") + std::strerror(errno));
  }
  Stdio io;
  io.ours.terminal.reset(master);
  io.child_end.reset(slave);
  io.child_stdin = io.child_stdout = io.child_stderr = slave;
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  io.ours.stdin_fd.reset(::fcntl(master, F_DUPFD_CLOEXEC, 3));
  io.ours.stdout_fd.reset(::fcntl(master, F_DUPFD_CLOEXEC, 3));
  if (!io.ours.stdin_fd || !io.ours.stdout_fd) {
    return Refuse(protocol::kCodeInternal, std::string("exec: dup: ") + std::strerror(errno));
  }
  return io;
}

}  // namespace

AgentResult<LaunchedExec> LaunchExec(const protocol::ExecStart& start, const ExecCgroup* cgroup,
                                     const UserDatabase& users) {
  const protocol::ExecRequest& request = start.request;
  if (request.argv.empty() || request.argv[0].empty()) {
    return Refuse(protocol::kCodeInvalidArgument, "exec: argv is empty");
  }
  for (const std::string& arg : request.argv) {
    if (HasNul(arg)) return Refuse(protocol::kCodeInvalidArgument, "exec: argv holds a NUL byte");
  }
  if (HasNul(request.cwd)) return Refuse(protocol::kCodeInvalidArgument, "exec: cwd holds a NUL byte");

  UserInfo user = RootUser();
  if (!request.user.empty()) {
    auto found = LookupUser(request.user, users);
    if (!found) return std::unexpected(found.error());
    user = std::move(*found);
  }
  auto env = Environment(request, user, users);
  if (!env) return std::unexpected(env.error());

  SpawnPlan plan;
  plan.argv = request.argv;
  plan.candidates = Candidates(request.argv[0], *env);
  plan.env = std::move(*env);
  // Like a login: an exec that names no directory starts in its home.
  plan.cwd = !request.cwd.empty() ? request.cwd : IsDirectory(user.home) ? user.home : "/";
  if (!request.user.empty()) plan.credentials = Credentials{user.uid, user.gid, user.groups};
  if (cgroup) plan.cgroup_fd = cgroup->dir_fd();

  const bool stdin_needed = !start.stdin_eof || !request.stdin_data.empty();
  auto io = request.tty ? OpenTerminal(request.size) : OpenPipes(stdin_needed);
  if (!io) return std::unexpected(io.error());
  plan.stdin_fd = io->child_stdin;
  plan.stdout_fd = io->child_stdout;
  plan.stderr_fd = io->child_stderr;
  plan.controlling_terminal = request.tty;

  auto pid = Spawn(plan);
  if (!pid) {
    const SpawnFailure& failure = pid.error();
    const char* why = std::strerror(failure.err);
    switch (failure.step) {
      case SpawnFailure::Step::kChdir:
        return Refuse(CodeForErrno(failure.err), "chdir " + plan.cwd + ": " + why);
      case SpawnFailure::Step::kExec:
        return Refuse(CodeForErrno(failure.err), "exec " + request.argv[0] + ": " + why);
      case SpawnFailure::Step::kCredentials:
        return Refuse(protocol::kCodeInternal, "exec: become user " + user.name + ": " + why);
      case SpawnFailure::Step::kCgroup:
        return Refuse(protocol::kCodeInternal, "exec: join cgroup: " + std::string(why));
      case SpawnFailure::Step::kSetup:
        break;
    }
    return Refuse(protocol::kCodeInternal, "exec: spawn: " + std::string(why));
  }
  LaunchedExec launched = std::move(io->ours);
  launched.pid = *pid;
  for (const UniqueFd* fd : {&launched.stdin_fd, &launched.stdout_fd, &launched.stderr_fd}) {
    if (*fd) SetNonBlocking(fd->get());
  }
  return launched;
}

}  // namespace agentvm::guest
