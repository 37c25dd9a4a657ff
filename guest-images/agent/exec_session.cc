#include "guest-images/agent/exec_session.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "guest-images/agent/log.h"

namespace agentvm::guest {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// Upper bound for Finish()'s drain, against a grandchild that keeps writing.
constexpr std::size_t kFinishDrainLimit = 1024 * 1024;

// What the child reports through its CLOEXEC status pipe when it cannot exec.
struct ChildFailure {
  int stage;  // kStageSetup, kStageChdir, kStageExec
  int err;
};
constexpr int kStageSetup = 0;
constexpr int kStageChdir = 1;
constexpr int kStageExec = 2;

std::unexpected<protocol::ErrorReply> Refuse(std::string_view code, std::string message) {
  return std::unexpected(protocol::ErrorReply{std::string(code), std::move(message)});
}

bool SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// Everything the child needs, prepared before fork(): between fork and exec
// only async-signal-safe calls are allowed (the agent library also runs
// inside multi-threaded test binaries).
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

[[noreturn]] void Report(int status_fd, int stage, int err) {
  ChildFailure failure{stage, err};
  ssize_t ignored = ::write(status_fd, &failure, sizeof failure);
  (void)ignored;
  ::_exit(127);
}

bool MoveTo(int fd, int target) {
  if (fd == target) return ::fcntl(fd, F_SETFD, 0) == 0;  // dup2 would keep CLOEXEC
  return ::dup2(fd, target) == target;
}

// Runs in the forked child: async-signal-safe calls only.
[[noreturn]] void RunChild(const ChildPlan& plan, int in_fd, int out_fd, int err_fd,
                           int status_fd) {
  if (::setsid() < 0) Report(status_fd, kStageSetup, errno);
  if (!MoveTo(in_fd, STDIN_FILENO) || !MoveTo(out_fd, STDOUT_FILENO) ||
      !MoveTo(err_fd, STDERR_FILENO)) {
    Report(status_fd, kStageSetup, errno);
  }
  // Ignored signals survive exec (the agent ignores SIGPIPE); start clean.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Nothing but stdio may leak into the program (the status pipe is already
  // CLOEXEC and must stay open until exec).
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (::chdir(plan.cwd.c_str()) != 0) Report(status_fd, kStageChdir, errno);
  int err = ENOENT;
  bool saw_eacces = false;
  for (const char* candidate : plan.candidate_ptrs) {
    ::execve(candidate, plan.argv.data(), plan.envp.data());
    err = errno;
    if (err == EACCES) {
      saw_eacces = true;
    } else if (err != ENOENT && err != ENOTDIR) {
      break;
    }
  }
  if (saw_eacces && (err == ENOENT || err == ENOTDIR)) err = EACCES;
  Report(status_fd, kStageExec, err);
}

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

  Pipe in, out, err, status;
  if (!in.Open() || !out.Open() || !err.Open() || !status.Open()) {
    return Refuse(protocol::kCodeInternal, std::string("exec: pipe: ") + std::strerror(errno));
  }
  pid_t pid = ::fork();
  if (pid < 0)
    return Refuse(protocol::kCodeInternal, std::string("exec: fork: ") + std::strerror(errno));
  if (pid == 0) RunChild(plan, in.read.get(), out.write.get(), err.write.get(), status.write.get());

  in.read.reset();
  out.write.reset();
  err.write.reset();
  status.write.reset();

  // EOF on the status pipe means execve succeeded (CLOEXEC closed it).
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(status.read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n != 0) {
    int wstatus;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (n != static_cast<ssize_t>(sizeof failure)) {
      return Refuse(protocol::kCodeInternal, "exec: lost the child's start status");
    }
    const std::string& program = start.request.argv[0];
    switch (failure.stage) {
      case kStageChdir:
        return Refuse(CodeForErrno(failure.err),
                      "chdir " + plan.cwd + ": " + std::strerror(failure.err));
      case kStageExec:
        return Refuse(CodeForErrno(failure.err),
                      "exec " + program + ": " + std::strerror(failure.err));
      default:
        return Refuse(protocol::kCodeInternal,
                      "exec " + program + ": child setup: " + std::strerror(failure.err));
    }
  }

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
  if (!stdin_) return;  // the program closed its stdin; drop what comes
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
      stdin_.reset();
      stdin_pending_.clear();
      stdin_sent_ = 0;
      return;
    }
    stdin_sent_ += static_cast<std::size_t>(n);
  }
  CloseStdinIfDone();
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
  char buf[kReadChunk];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) {
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
  ::kill(-pid_, SIGKILL);
  // In case the child has not reached setsid() yet.
  ::kill(pid_, SIGKILL);
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

void ExecSession::Finish(OutputQueue* out) {
  for (auto which : {protocol::OutputStream::kStdout, protocol::OutputStream::kStderr}) {
    std::size_t drained = 0;
    while (drained < kFinishDrainLimit) {
      std::size_t before = out->total_bytes();
      if (ReadOnce(which, out) != ReadState::kData) break;
      drained += out->total_bytes() - before;
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
}

}  // namespace agentvm::guest
