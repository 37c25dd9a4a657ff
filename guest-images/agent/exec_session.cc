#include "guest-images/agent/exec_session.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "guest-images/agent/log.h"

namespace agentvm::guest {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// Upper bound for Finish()'s drain, against a grandchild that keeps writing.
constexpr std::size_t kFinishDrainLimit = 1024 * 1024;
// A "stdin_ack" is sent once this much was taken, or when nothing is left
// pending: fewer frames, and the host never waits on a small remainder.
constexpr std::uint64_t kStdinAckBytes = 64 * 1024;

std::unexpected<protocol::ErrorReply> Refuse(std::string_view code, std::string message) {
  return std::unexpected(protocol::ErrorReply{std::string(code), std::move(message)});
}

bool SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// Everything the child needs, prepared in the agent: posix_spawn's child
// shares the agent's memory until it execs and only follows this plan.
struct ChildPlan {
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  std::vector<char*> argv;
  std::vector<std::string> candidates;  // paths to try for argv[0], in order
  std::vector<const char*> candidate_ptrs;
  std::string cwd;
};

AgentResult<void> Prepare(protocol::ExecRequest& request, ChildPlan* plan) {
  if (request.argv.empty() || request.argv[0].empty()) {
    return Refuse(protocol::kCodeInvalidArgument, "exec: argv is empty");
  }
  for (const std::string& arg : request.argv) {
    if (arg.find('\0') != std::string::npos) {
      return Refuse(protocol::kCodeInvalidArgument, "exec: argv holds a NUL byte");
    }
  }
  std::map<std::string, std::string> env = {{"PATH", std::string(kBasePath)},
                                            {"HOME", std::string(kBaseHome)}};
  for (const auto& [key, value] : request.env) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return Refuse(protocol::kCodeInvalidArgument,
                    "exec: bad environment variable \"" + key + "\"");
    }
    env[key] = value;
  }
  for (const auto& [key, value] : env) plan->env_strings.push_back(key + "=" + value);
  for (std::string& s : plan->env_strings) plan->envp.push_back(s.data());
  plan->envp.push_back(nullptr);
  for (std::string& arg : request.argv) plan->argv.push_back(arg.data());
  plan->argv.push_back(nullptr);

  // PATH lookup uses the child's PATH (execvpe would use the agent's own).
  const std::string& program = request.argv[0];
  if (program.find('/') != std::string::npos) {
    plan->candidates.push_back(program);
  } else {
    std::string_view path = env["PATH"];
    while (true) {
      std::size_t colon = path.find(':');
      std::string_view dir = path.substr(0, colon);
      plan->candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" +
                                 program);
      if (colon == std::string_view::npos) break;
      path.remove_prefix(colon + 1);
    }
  }
  for (const std::string& c : plan->candidates) plan->candidate_ptrs.push_back(c.c_str());
  plan->cwd = request.cwd.empty() ? "/" : request.cwd;
  if (plan->cwd.find('\0') != std::string::npos) {
    return Refuse(protocol::kCodeInvalidArgument, "exec: cwd holds a NUL byte");
  }
  return {};
}

// 0 if execve(path) would get as far as loading the file, else the errno it
// fails with. Checked here because posix_spawn execs a single path.
int ProbeProgram(const char* path) {
  struct stat st;
  if (::stat(path, &st) != 0) return errno;
  if (!S_ISREG(st.st_mode)) return EACCES;
  return ::access(path, X_OK) == 0 ? 0 : errno;
}

// 0 if chdir(dir) would work, else its errno. posix_spawn's error does not say
// which step failed, so a bad cwd is caught before spawning.
int ProbeCwd(const char* dir) {
  struct stat st;
  if (::stat(dir, &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  return ::access(dir, X_OK) == 0 ? 0 : errno;
}

// posix_spawn's attributes and file actions, destroyed on every path.
struct SpawnSpec {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSpec() {
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSpec() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
  SpawnSpec(const SpawnSpec&) = delete;
  SpawnSpec& operator=(const SpawnSpec&) = delete;

  // Own session; stdio from the pipes; nothing else leaks into the program.
  int Init(const ChildPlan& plan, int in_fd, int out_fd, int err_fd) {
    // Ignored signals survive exec (the agent ignores SIGPIPE): all back to
    // SIG_DFL. glibc's child visits every signal anyway (one sigaction each),
    // so the full set costs no more than a short list. memset, not
    // sigfillset: that drops glibc's internal signals 32 and 33, which
    // glibc 2.36's spawn would then leave ignored in the program.
    sigset_t all, none;
    std::memset(&all, 0xff, sizeof all);
    ::sigemptyset(&none);
    int rc = 0;
    for (int r : {::posix_spawnattr_setflags(
                      &attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK),
                  ::posix_spawnattr_setsigdefault(&attr, &all),
                  ::posix_spawnattr_setsigmask(&attr, &none),
                  // dup2 onto the same fd clears CLOEXEC (glibc >= 2.29).
                  ::posix_spawn_file_actions_adddup2(&actions, in_fd, STDIN_FILENO),
                  ::posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO),
                  ::posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO),
                  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3),
                  ::posix_spawn_file_actions_addchdir_np(&actions, plan.cwd.c_str())}) {
      if (rc == 0) rc = r;
    }
    return rc;
  }
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
  bool Open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    read.reset(fds[0]);
    write.reset(fds[1]);
    return true;
  }
};

}  // namespace

AgentResult<std::unique_ptr<ExecSession>> ExecSession::Start(std::uint32_t stream,
                                                             protocol::ExecStart start) {
  ChildPlan plan;
  if (auto ok = Prepare(start.request, &plan); !ok) return std::unexpected(ok.error());

  if (int e = ProbeCwd(plan.cwd.c_str()); e != 0) {
    return Refuse(CodeForErrno(e), "chdir " + plan.cwd + ": " + std::strerror(e));
  }
  Pipe in, out, err;
  if (!in.Open() || !out.Open() || !err.Open()) {
    return Refuse(protocol::kCodeInternal, std::string("exec: pipe: ") + std::strerror(errno));
  }
  SpawnSpec spec;
  if (int e = spec.Init(plan, in.read.get(), out.write.get(), err.write.get()); e != 0) {
    return Refuse(protocol::kCodeInternal, std::string("exec: spawn setup: ") + std::strerror(e));
  }

  // posix_spawn is clone(CLONE_VM|CLONE_VFORK): fork() would copy the page
  // tables of this static agent and take copy-on-write faults until exec,
  // which under TCG cost milliseconds per exec. It returns the child's errno
  // from any step before exec, so no status pipe is needed. The PATH search
  // mirrors execvpe's: skip candidates that are missing or not executable,
  // report EACCES if one was found but none ran, stop on any other error.
  const std::string& program = start.request.argv[0];
  pid_t pid = -1;
  int spawn_err = ENOENT;
  bool saw_eacces = false;
  for (const char* candidate : plan.candidate_ptrs) {
    spawn_err = ProbeProgram(candidate);
    if (spawn_err == 0) {
      spawn_err = ::posix_spawn(&pid, candidate, &spec.actions, &spec.attr, plan.argv.data(),
                                plan.envp.data());
      if (spawn_err == 0) break;
    }
    if (spawn_err == EACCES) {
      saw_eacces = true;
    } else if (spawn_err != ENOENT && spawn_err != ENOTDIR) {
      break;
    }
  }
  if (spawn_err != 0) {
    if (saw_eacces && (spawn_err == ENOENT || spawn_err == ENOTDIR)) spawn_err = EACCES;
    // The cwd may have gone since the probe; then that is what failed.
    if (int e = ProbeCwd(plan.cwd.c_str()); e != 0) {
      return Refuse(CodeForErrno(e), "chdir " + plan.cwd + ": " + std::strerror(e));
    }
    return Refuse(CodeForErrno(spawn_err), "exec " + program + ": " + std::strerror(spawn_err));
  }
  in.read.reset();
  out.write.reset();
  err.write.reset();

  std::unique_ptr<ExecSession> session(new ExecSession(stream));
  session->pid_ = pid;
  // Without pidfds (kernel < 5.3) the agent falls back to polling waitpid.
  // (syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.)
  session->pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  session->stdin_ = std::move(in.write);
  session->stdout_ = std::move(out.read);
  session->stderr_ = std::move(err.read);
  SetNonBlocking(session->stdin_.get());
  SetNonBlocking(session->stdout_.get());
  SetNonBlocking(session->stderr_.get());
  if (start.request.timeout.count() > 0) {
    session->deadline_ = Clock::now() + start.request.timeout;
  }
  session->output_window_ = start.output_window;
  session->output_credit_ = start.output_window;
  session->AddStdin(start.request.stdin_data, start.stdin_eof);
  return session;
}

ExecSession::~ExecSession() {
  if (pid_ <= 0 || reaped_) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

int ExecSession::stdin_fd_to_poll() const {
  return stdin_ && stdin_sent_ < stdin_pending_.size() ? stdin_.get() : -1;
}

std::optional<ExecSession::Clock::time_point> ExecSession::deadline() const {
  if (timed_out_ || reaped_) return std::nullopt;
  return deadline_;
}

void ExecSession::AddStdin(std::string_view data, bool eof) {
  if (!stdin_) {
    // The program closed its stdin: drop what comes, but acknowledge it, or
    // a host streaming more would wait for window space forever.
    CountStdinTaken(data.size());
    return;
  }
  if (stdin_sent_ == stdin_pending_.size()) {
    stdin_pending_.clear();
    stdin_sent_ = 0;
  }
  stdin_pending_.append(data);
  stdin_eof_ = stdin_eof_ || eof;
  WriteStdin();
}

void ExecSession::WriteStdin() {
  while (stdin_ && stdin_sent_ < stdin_pending_.size()) {
    ssize_t n = ::write(stdin_.get(), stdin_pending_.data() + stdin_sent_,
                        stdin_pending_.size() - stdin_sent_);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      // EPIPE: the program does not read its stdin; nothing more to deliver.
      CountStdinTaken(stdin_pending_.size() - stdin_sent_);
      stdin_.reset();
      stdin_pending_.clear();
      stdin_sent_ = 0;
      return;
    }
    stdin_sent_ += static_cast<std::size_t>(n);
    CountStdinTaken(static_cast<std::size_t>(n));
  }
  CloseStdinIfDone();
}

void ExecSession::CountStdinTaken(std::size_t bytes) { stdin_unacked_ += bytes; }

std::uint64_t ExecSession::TakeStdinAck() {
  bool nothing_pending = stdin_sent_ == stdin_pending_.size();
  if (stdin_unacked_ == 0 || (stdin_unacked_ < kStdinAckBytes && !nothing_pending)) return 0;
  return std::exchange(stdin_unacked_, 0);
}

void ExecSession::AddOutputCredit(std::uint64_t bytes) {
  if (!output_credit_) return;
  // Never more than the window: a confused host cannot make us buffer more.
  *output_credit_ = std::min(*output_window_, *output_credit_ + bytes);
}

void ExecSession::CloseStdinIfDone() {
  if (stdin_ && stdin_eof_ && stdin_sent_ == stdin_pending_.size()) {
    stdin_.reset();
    stdin_pending_.clear();
    stdin_sent_ = 0;
  }
}

ExecSession::ReadState ExecSession::ReadOnce(protocol::OutputStream which, OutputQueue* out) {
  UniqueFd& fd = which == protocol::OutputStream::kStdout ? stdout_ : stderr_;
  if (!fd) return ReadState::kClosed;
  std::size_t room = output_credit_ ? std::min<std::uint64_t>(*output_credit_, kReadChunk) : kReadChunk;
  if (room == 0) return ReadState::kAgain;
  char buf[kReadChunk];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, room);
    if (n > 0) {
      if (output_credit_) *output_credit_ -= static_cast<std::uint64_t>(n);
      out->Push(protocol::OutputFrame(stream_, which, std::string_view(buf, n)));
      return ReadState::kData;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return ReadState::kAgain;
    fd.reset();  // EOF or error
    return ReadState::kClosed;
  }
}

void ExecSession::ReadOutput(protocol::OutputStream which, OutputQueue* out) {
  ReadOnce(which, out);
}

void ExecSession::Signal(int signal) {
  if (reaped_) return;
  if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
}

void ExecSession::KillForTimeout() {
  if (reaped_ || timed_out_) return;
  timed_out_ = true;
  LogDebug("stream " + std::to_string(stream_) + ": timeout, killing process group " +
           std::to_string(pid_));
  // posix_spawn returned after the child's setsid(), so the group holds it.
  ::kill(-pid_, SIGKILL);
}

bool ExecSession::TryReap() {
  if (reaped_) return true;
  int status;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    reaped_ = true;
    wait_status_ = status;
    pidfd_.reset();
  } else if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (SIGCHLD ignored in a host test process, say):
    // report an exit without a status rather than hang.
    reaped_ = true;
    pidfd_.reset();
  }
  return reaped_;
}

bool ExecSession::Finish(OutputQueue* out) {
  for (auto which : {protocol::OutputStream::kStdout, protocol::OutputStream::kStderr}) {
    UniqueFd& fd = which == protocol::OutputStream::kStdout ? stdout_ : stderr_;
    while (fd) {
      if (output_credit_ && *output_credit_ == 0) return false;  // more after an output_ack
      if (drained_after_reap_ >= kFinishDrainLimit) {
        fd.reset();
        break;
      }
      std::size_t before = out->total_bytes();
      if (ReadOnce(which, out) != ReadState::kData) {
        fd.reset();  // EOF, or empty now: what a grandchild writes later is not waited for
        break;
      }
      drained_after_reap_ += out->total_bytes() - before;
    }
  }
  stdin_.reset();
  stdout_.reset();
  stderr_.reset();
  protocol::ExecResult result;
  result.timed_out = timed_out_;
  if (wait_status_ && WIFEXITED(*wait_status_)) result.exit_code = WEXITSTATUS(*wait_status_);
  if (wait_status_ && WIFSIGNALED(*wait_status_)) result.signal = WTERMSIG(*wait_status_);
  out->Push(protocol::ExitFrame(stream_, result));
  return true;
}

}  // namespace agentvm::guest
