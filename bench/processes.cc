#include "bench/processes.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <exception>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "supervisor/pidfd.h"

namespace agentvm::bench {
namespace {

namespace fs = std::filesystem;

struct Tracked {
  pid_t pid;
  ProcessKind kind;
  fs::path run_dir;
};

// The benchmarks run on one thread; the signal path runs after it stopped.
std::vector<Tracked>& TrackedProcesses() {
  static std::vector<Tracked> tracked;
  return tracked;
}

fs::path& TrackedWorkDir() {
  static fs::path dir;
  return dir;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

bool WaitChildExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      return true;  // not our child any more: already reaped
    }
    if (info.si_pid == pid) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void KillQemusUnder(const fs::path& run_dir) {
  std::error_code ec;
  const fs::path vms = run_dir / "vms";
  if (!fs::is_directory(vms, ec)) return;
  for (const auto& entry : fs::directory_iterator(vms, ec)) {
    const std::string text = ReadAll(entry.path() / "qemu.pid");
    const int pid = std::atoi(text.c_str());
    if (pid <= 0) continue;
    const int pidfd = PidfdOpen(pid);
    if (pidfd < 0) continue;  // gone already
    // The pidfd pins the process, so this check and the kill see the same one.
    if (ReadAll("/proc/" + std::to_string(pid) + "/cmdline").find(run_dir.string() + "/") != std::string::npos) {
      PidfdSendSignal(pidfd, SIGKILL);
      pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
      ::poll(&p, 1, 5000);
    }
    ::close(pidfd);
  }
}

void TrackProcess(pid_t pid, ProcessKind kind, fs::path run_dir) {
  TrackedProcesses().push_back(Tracked{pid, kind, std::move(run_dir)});
}

void UntrackProcess(pid_t pid) {
  std::erase_if(TrackedProcesses(), [pid](const Tracked& t) { return t.pid == pid; });
}

void TrackWorkDir(fs::path dir) { TrackedWorkDir() = std::move(dir); }
void UntrackWorkDir() { TrackedWorkDir().clear(); }

void EmergencyCleanup() {
  // Daemons first: they stop their own VMs when asked nicely.
  for (const Tracked& t : TrackedProcesses()) {
    if (t.kind != ProcessKind::kDaemon) continue;
    ::kill(t.pid, SIGTERM);
    if (!WaitChildExit(t.pid, std::chrono::seconds(20))) {
      ::kill(t.pid, SIGKILL);
      WaitChildExit(t.pid, std::chrono::seconds(5));
    }
    KillQemusUnder(t.run_dir);
  }
  for (const Tracked& t : TrackedProcesses()) {
    if (t.kind == ProcessKind::kQemu) ::kill(t.pid, SIGKILL);
  }
  for (const Tracked& t : TrackedProcesses()) ::waitpid(t.pid, nullptr, 0);
  TrackedProcesses().clear();
  if (!TrackedWorkDir().empty()) {
    std::error_code ec;
    fs::remove_all(TrackedWorkDir(), ec);
    UntrackWorkDir();
  }
}

WorkDir::WorkDir(const fs::path& parent) {
  std::string pattern = (parent / "agentvm-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
  }
  path_ = pattern;
  TrackWorkDir(path_);
}

WorkDir::~WorkDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
  UntrackWorkDir();
}

int RunInterruptibly(const std::string& name, std::function<boost::asio::awaitable<int>()> work) {
  namespace asio = boost::asio;
  asio::io_context io;
  bool interrupted = false;
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    interrupted = true;
    io.stop();
  });
  int exit_code = 1;
  asio::co_spawn(io, work(), [&](std::exception_ptr error, int code) {
    exit_code = code;
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        std::cerr << name << ": " << e.what() << "\n";
      }
      exit_code = 1;
    }
    signals.cancel();
  });
  io.run();
  if (interrupted) {
    std::cerr << name << ": interrupted; stopping every VM and agentvmd it started\n";
    EmergencyCleanup();
    std::_Exit(130);
  }
  return exit_code;
}

}  // namespace agentvm::bench
