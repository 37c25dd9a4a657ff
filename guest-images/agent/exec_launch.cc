#include "guest-images/agent/exec_launch.h"

#include <fcntl.h>
#include <pty.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
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
// the request's env on top.
AgentResult<std::vector<std::string>> Environment(const protocol::ExecRequest& request, const UserInfo& user,
                                                  const UserDatabase& files) {
  std::map<std::string, std::string> env = {{"PATH", std::string(kBasePath)}, {"LANG", "C.UTF-8"}};
  if (request.tty) env["TERM"] = std::string(kDefaultTerm);
  for (auto& [key, value] : ReadEnvironmentFile(files.environment)) env[key] = std::move(value);
  env["HOME"] = user.home;
  env["USER"] = user.name;
  env["LOGNAME"] = user.name;
  env["SHELL"] = user.shell;
  for (const auto& [key, value] : request.env) {
    if (key.empty() || key.find('=') != std::string::npos || HasNul(key) || HasNul(value)) {
      return Refuse(protocol::kCodeInvalidArgument, "exec: bad environment variable \"" + key + "\"");
    }
    env[key] = value;
  }
  std::vector<std::string> strings;
  for (const auto& [key, value] : env) strings.push_back(key + "=" + value);
  return strings;
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

bool SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

struct Stdio {
  // What the child gets as 0, 1, 2, and what the agent keeps.
  UniqueFd child_in, child_out, child_err;
  LaunchedExec ours;
};

AgentResult<Stdio> OpenPipes() {
  Stdio io;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return Refuse(protocol::kCodeInternal, std::string("exec: pipe: ") + std::strerror(errno));
  io.child_in.reset(in[0]);
  io.ours.stdin_fd.reset(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return Refuse(protocol::kCodeInternal, std::string("exec: pipe: ") + std::strerror(errno));
  io.ours.stdout_fd.reset(out[0]);
  io.child_out.reset(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return Refuse(protocol::kCodeInternal, std::string("exec: pipe: ") + std::strerror(errno));
  io.ours.stderr_fd.reset(err[0]);
  io.child_err.reset(err[1]);
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
  io.child_in.reset(slave);
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

AgentResult<LaunchedExec> LaunchExec(const protocol::ExecRequest& request, const ExecCgroup* cgroup,
                                     const UserDatabase& users) {
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
  if (cgroup) plan.cgroup_procs_fd = cgroup->procs_fd();

  auto io = request.tty ? OpenTerminal(request.size) : OpenPipes();
  if (!io) return std::unexpected(io.error());
  plan.stdin_fd = io->child_in.get();
  plan.stdout_fd = request.tty ? io->child_in.get() : io->child_out.get();
  plan.stderr_fd = request.tty ? io->child_in.get() : io->child_err.get();
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
