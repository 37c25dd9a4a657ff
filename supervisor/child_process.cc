#include "supervisor/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include "supervisor/pidfd.h"
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>

#include "common/logging.h"

namespace agentvm {
namespace bp = boost::process;

std::string ExitStatus::Describe() const {
  if (code) return "exited with status " + std::to_string(*code);
  if (signal) return "killed by signal " + std::to_string(*signal) + " (" + ::strsignal(*signal) + ")";
  // Reaped by someone else (or a process this daemon adopted): gone, how is unknown.
  return "exited (status unknown)";
}

ExitStatus ExitStatusFromWait(int wait_status) {
  ExitStatus status;
  if (WIFEXITED(wait_status)) status.code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) status.signal = WTERMSIG(wait_status);
  return status;
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Launch(boost::asio::any_io_executor executor,
                                                           const LaunchSpec& spec) {
  if (spec.argv.empty()) return Fail(ErrorCode::kInvalidArgument, "launch: empty argv");
  boost::filesystem::path program = spec.argv[0];
  if (program.filename() == program) program = bp::search_path(spec.argv[0]);
  if (program.empty()) return Fail(ErrorCode::kNotFound, "launch: " + spec.argv[0] + " not found in PATH");

  std::vector<std::string> args(spec.argv.begin() + 1, spec.argv.end());
  const std::string out = spec.stdout_path.empty() ? "/dev/null" : spec.stdout_path;
  const std::string err = spec.stderr_path.empty() ? "/dev/null" : spec.stderr_path;
  const std::vector<int> pass_fds = spec.pass_fds;

  std::error_code ec;
  bp::child child(
      bp::exe = program, bp::args = args, bp::std_in < bp::null, bp::std_out > out, bp::std_err > err,
      // Runs in the child between fork and exec: every inherited descriptor is
      // closed on exec except the ones this child is meant to have (tap fds),
      // whatever the rest of the daemon forgot to mark close-on-exec.
      bp::extend::on_exec_setup =
          [&pass_fds](auto&) {
            ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
            for (int fd : pass_fds) ::fcntl(fd, F_SETFD, 0);
          },
      ec);
  if (ec) return Fail(ErrorCode::kInternal, "launch " + program.string() + ": " + ec.message());

  const pid_t pid = child.id();
  child.detach();  // reaping is ours, through the pidfd
  return TakeOver(std::move(executor), pid);
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::TakeOver(boost::asio::any_io_executor executor, pid_t pid) {
  const int pidfd = PidfdOpen(pid);
  if (pidfd < 0) {
    const int err_no = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Fail(ErrnoError("pidfd_open", err_no));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(std::move(executor), pid, pidfd));
}

std::unique_ptr<ChildProcess> ChildProcess::Adopt(boost::asio::any_io_executor executor, pid_t pid, int pidfd) {
  return std::unique_ptr<ChildProcess>(new ChildProcess(std::move(executor), pid, pidfd));
}

ChildProcess::ChildProcess(boost::asio::any_io_executor executor, pid_t pid, int pidfd)
    : pid_(pid), pidfd_(std::move(executor), pidfd) {}

ChildProcess::~ChildProcess() {
  if (exit_status_) return;
  if (!TryReap()) {
    PidfdSendSignal(pidfd_.native_handle(), SIGKILL);
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) exit_status_ = ExitStatusFromWait(status);
  }
}

bool ChildProcess::TryReap() {
  if (exit_status_) return true;
  int status = 0;
  const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == pid_) {
    exit_status_ = ExitStatusFromWait(status);
    return true;
  }
  if (reaped < 0 && errno == ECHILD) {
    // Someone else reaped it; we can no longer learn how it ended.
    exit_status_ = ExitStatus{};
    return true;
  }
  return false;
}

boost::asio::awaitable<ExitStatus> ChildProcess::WaitExit() {
  while (!TryReap()) {
    boost::system::error_code ec;
    co_await pidfd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                               boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec == boost::asio::error::operation_aborted) continue;
  }
  co_return *exit_status_;
}

ExitStatus ChildProcess::WaitBlocking() {
  if (!exit_status_) {
    int status = 0;
    pid_t reaped = -1;
    do {
      reaped = ::waitpid(pid_, &status, 0);
    } while (reaped < 0 && errno == EINTR);
    // ECHILD: someone else reaped it; how it ended is lost (as in TryReap).
    exit_status_ = reaped == pid_ ? ExitStatusFromWait(status) : ExitStatus{};
  }
  return *exit_status_;
}

void ChildProcess::Kill(int signal) {
  if (exit_status_) return;
  // pidfd_send_signal cannot hit a recycled pid: the pidfd pins this process.
  PidfdSendSignal(pidfd_.native_handle(), signal);
}

namespace {

std::string ReadTail(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

boost::asio::awaitable<Result<void>> RunToCompletion(boost::asio::any_io_executor executor,
                                                     std::vector<std::string> argv,
                                                     std::string stderr_path) {
  const std::string name = argv.empty() ? "" : argv[0];
  auto child = ChildProcess::Launch(executor, LaunchSpec{.argv = std::move(argv), .stderr_path = stderr_path});
  if (!child) co_return Fail(child.error());
  const ExitStatus status = co_await (*child)->WaitExit();
  if (status.success()) co_return Result<void>{};
  std::string message = name + " " + status.Describe();
  if (std::string tail = ReadTail(stderr_path, 2048); !tail.empty()) message += ": " + tail;
  co_return Fail(ErrorCode::kInternal, message);
}

}  // namespace agentvm
