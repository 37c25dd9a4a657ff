#include "guest-images/agent/exec_session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "guest-images/agent/exec_launch.h"
#include "guest-images/agent/log.h"

namespace agentvm::guest {
namespace {

// Largest output frame payload: fewer frames, wakeups and syscalls per MiB
// for a chatty program, while a small write still goes out at once.
constexpr std::size_t kReadChunk = 256 * 1024;
// Read size when the pipe cannot say how much it holds.
constexpr std::size_t kSmallRead = 4096;
// A pipe the program fills (or, for stdin, that fills up before the program
// reads it) grows to this once: a 64 KiB pipe makes the program and the agent
// take turns every 64 KiB, each turn a guest context switch and a poll round,
// and under TCG those dominate. Programs that write little never pay for it.
constexpr int kBusyPipeBytes = 1024 * 1024;
constexpr std::size_t kDefaultPipeBytes = 64 * 1024;  // Linux's, until F_SETPIPE_SZ
// Upper bound for Finish()'s drain, against a grandchild that keeps writing.
constexpr std::size_t kFinishDrainLimit = 1024 * 1024;
// A "stdin_ack" is sent once this much was taken, or when nothing is left
// pending: fewer frames, and the host never waits on a small remainder.
constexpr std::uint64_t kStdinAckBytes = 64 * 1024;

// Bytes waiting in a pipe or terminal; nullopt when it cannot tell.
std::optional<std::size_t> Readable(int fd) {
  int n = 0;
  if (::ioctl(fd, FIONREAD, &n) != 0 || n < 0) return std::nullopt;
  return static_cast<std::size_t>(n);
}

// Best effort: a terminal is not a pipe, and a smaller pipe still works.
void GrowPipe(int fd) { (void)::fcntl(fd, F_SETPIPE_SZ, kBusyPipeBytes); }

}  // namespace

AgentResult<std::unique_ptr<ExecSession>> ExecSession::Start(std::uint32_t stream, protocol::ExecStart start,
                                                             ExecCgroups* cgroups) {
  std::unique_ptr<ExecCgroup> cgroup;
  if (cgroups) {
    auto made = cgroups->Create();
    if (!made) return std::unexpected(made.error());
    cgroup = std::move(*made);
  }
  auto launched = LaunchExec(start, cgroup.get());
  if (!launched) {
    if (cgroups) cgroups->Retire(std::move(cgroup));
    return std::unexpected(launched.error());
  }
  std::unique_ptr<ExecSession> session(new ExecSession(stream));
  session->pid_ = launched->pid;
  session->cgroups_ = cgroups;
  session->cgroup_ = std::move(cgroup);
  // Without pidfds (kernel < 5.3) the agent falls back to polling waitpid.
  // (syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.)
  session->pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, launched->pid, 0)));
  session->stdin_ = std::move(launched->stdin_fd);
  session->stdout_ = std::move(launched->stdout_fd);
  session->stderr_ = std::move(launched->stderr_fd);
  session->terminal_ = std::move(launched->terminal);
  // Without a pidfd the pipes' end-of-file is what wakes the agent.
  if (session->pidfd_) {
    session->stdout_writer_ = std::move(launched->stdout_writer);
    session->stderr_writer_ = std::move(launched->stderr_writer);
  }
  // A terminal has no end-of-file to pass on: what the user types (^D)
  // ends a program's input, so stdin's end from the host is not acted on.
  session->stdin_eof_is_noop_ = start.request.tty;
  if (start.request.timeout.count() > 0) {
    session->deadline_ = Clock::now() + start.request.timeout;
  }
  session->output_window_ = start.output_window;
  session->output_credit_ = start.output_window;
  session->AddStdin(start.request.stdin_data, start.stdin_eof);
  return session;
}

ExecSession::~ExecSession() {
  if (pid_ > 0 && !reaped_) {
    KillAll();
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (cgroups_) cgroups_->Retire(std::move(cgroup_));
}

void ExecSession::KillAll() {
  // The cgroup holds everything the program started, setsid'd or not; the
  // process group is what there is without one.
  if (cgroup_) cgroup_->Kill();
  if (!reaped_) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }
}

void ExecSession::Resize(protocol::TerminalSize size) {
  if (!terminal_) return;
  winsize ws{size.rows, size.cols, 0, 0};
  // The kernel sends SIGWINCH to the terminal's foreground process group.
  if (::ioctl(terminal_.get(), TIOCSWINSZ, &ws) != 0) {
    LogDebug("stream " + std::to_string(stream_) + ": resize: " + std::strerror(errno));
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
  stdin_eof_ = stdin_eof_ || eof;
  if (stdin_sent_ == stdin_pending_.size()) {
    stdin_pending_.clear();
    stdin_sent_ = 0;
    // Nothing waits before it: straight from the frame, one copy fewer.
    data.remove_prefix(WriteSomeStdin(data));
  }
  // The rest goes when the pipe has room (POLLOUT, WriteStdin()).
  stdin_pending_.append(data);
  CloseStdinIfDone();
}

void ExecSession::WriteStdin() {
  std::string_view rest(stdin_pending_);
  rest.remove_prefix(stdin_sent_);
  stdin_sent_ += WriteSomeStdin(rest);
  if (!stdin_) {
    stdin_pending_.clear();
    stdin_sent_ = 0;
  }
  CloseStdinIfDone();
}

std::size_t ExecSession::WriteSomeStdin(std::string_view data) {
  std::size_t done = 0;
  while (stdin_ && done < data.size()) {
    ssize_t n = ::write(stdin_.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!stdin_grown_ && !terminal_) {
          stdin_grown_ = true;
          GrowPipe(stdin_.get());
          continue;
        }
        break;
      }
      // EPIPE: the program does not read its stdin; nothing more to deliver.
      stdin_.reset();
      done = data.size();
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  CountStdinTaken(done);
  return done;
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
  if (stdin_ && stdin_eof_ && !stdin_eof_is_noop_ && stdin_sent_ == stdin_pending_.size()) {
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
  // Sized by what the pipe holds, so a few bytes cost no large buffer; an
  // empty pipe still needs a read to see EOF or EAGAIN.
  std::optional<std::size_t> ready = Readable(fd.get());
  bool& grown = which == protocol::OutputStream::kStdout ? stdout_grown_ : stderr_grown_;
  if (ready && *ready >= kDefaultPipeBytes && !grown && !terminal_) {
    grown = true;
    GrowPipe(fd.get());
  }
  const bool small = !ready || *ready < kSmallRead;
  const std::size_t want = std::min(room, small ? kSmallRead : *ready);
  // Read straight into the frame's buffer (OutputQueue::PushWithHeadroom);
  // a small read goes through the stack, so an EOF allocates nothing.
  std::string buffer;
  char small_buf[kSmallRead];
  // Not zero-filled: read() overwrites it, and a memset is a copy's cost.
  if (!small) buffer.resize_and_overwrite(OutputQueue::kHeadroom + want, [](char*, std::size_t n) { return n; });
  char* into = small ? small_buf : buffer.data() + OutputQueue::kHeadroom;
  while (true) {
    ssize_t n = ::read(fd.get(), into, want);
    if (n > 0) {
      if (output_credit_) *output_credit_ -= static_cast<std::uint64_t>(n);
      if (small) {
        buffer.reserve(OutputQueue::kHeadroom + static_cast<std::size_t>(n));
        buffer.resize(OutputQueue::kHeadroom);
        buffer.append(small_buf, static_cast<std::size_t>(n));
      } else {
        buffer.resize(OutputQueue::kHeadroom + static_cast<std::size_t>(n));
      }
      out->PushWithHeadroom(protocol::OutputFrame(stream_, which, {}), std::move(buffer));
      return ReadState::kData;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return ReadState::kAgain;
    fd.reset();  // EOF or error (a terminal whose last user is gone says EIO)
    return ReadState::kClosed;
  }
}

void ExecSession::ReadOutput(protocol::OutputStream which, OutputQueue* out) {
  ReadOnce(which, out);
}

void ExecSession::Signal(int signal) {
  // SIGKILL from the host means "end it all": the whole cgroup.
  if (signal == SIGKILL) return KillAll();
  if (reaped_) return;
  if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
}

void ExecSession::KillForTimeout() {
  if (reaped_ || timed_out_) return;
  timed_out_ = true;
  LogDebug("stream " + std::to_string(stream_) + ": timeout, killing what it started");
  KillAll();
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
  stdout_writer_.reset();
  stderr_writer_.reset();
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
  terminal_.reset();
  protocol::ExecResult result;
  result.timed_out = timed_out_;
  if (wait_status_ && WIFEXITED(*wait_status_)) result.exit_code = WEXITSTATUS(*wait_status_);
  if (wait_status_ && WIFSIGNALED(*wait_status_)) result.signal = WTERMSIG(*wait_status_);
  out->Push(protocol::ExitFrame(stream_, result));
  return true;
}

}  // namespace agentvm::guest
