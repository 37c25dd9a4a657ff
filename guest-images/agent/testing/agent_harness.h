// Test support: runs the real agentvm-guest binary with --fd over a
// socketpair on the host, and a blocking frame client for the other end.
// Header-only so both unit_agent and unit_supervisor can use it without
// linking anything new. Never sends "shutdown" on its own.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

#include <gtest/gtest.h>

namespace agentvm::guest::testing {

// $AGENTVM_GUEST_BIN, else agentvm-guest next to the running test binary
// (CMake puts every executable in build/bin/).
inline std::string AgentBinaryPath() {
  if (const char* env = std::getenv("AGENTVM_GUEST_BIN")) return env;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "agentvm-guest";
  std::string self(buf, static_cast<std::size_t>(n));
  return self.substr(0, self.rfind('/') + 1) + "agentvm-guest";
}

// Where cgroup2 is mounted here (/sys/fs/cgroup on v2 hosts,
// /sys/fs/cgroup/unified on hybrid ones); empty without one.
inline std::string Cgroup2Mount() {
  std::ifstream mounts("/proc/self/mounts");
  std::string device, dir, type, rest;
  while (mounts >> device >> dir >> type && std::getline(mounts, rest)) {
    if (type == "cgroup2") return dir;
  }
  return "";
}

// True when `pid` no longer runs (gone, or a zombie nobody reaped yet).
inline bool ProcessGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z';
}

// utime + stime of `pid` in clock ticks (for "does not spin" checks).
inline long CpuTicks(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields;
  std::string field;
  for (std::size_t i = close + 2; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field.push_back(line[i]);
    }
  }
  // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
  if (fields.size() < 13) return -1;
  return std::stol(fields[11]) + std::stol(fields[12]);
}

class AgentProcess {
 public:
  // Forks and execs the agent with `--fd 3` plus `extra_args`; nullptr (and
  // a message in *error) when the binary is missing.
  static std::unique_ptr<AgentProcess> Start(std::vector<std::string> extra_args = {},
                                             std::string* error = nullptr) {
    std::string binary = AgentBinaryPath();
    if (::access(binary.c_str(), X_OK) != 0) {
      if (error) *error = binary + " is not built (build target agentvm-guest)";
      return nullptr;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return nullptr;
    std::vector<std::string> args = {binary, "--fd", "3"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(sv[1], 3);  // dup2 clears CLOEXEC on the copy
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(sv[1]);
    auto process = std::unique_ptr<AgentProcess>(new AgentProcess);
    process->pid_ = pid;
    process->host_.reset(sv[0]);
    return process;
  }

  ~AgentProcess() {
    host_.reset();  // the agent exits when its channel closes
    if (!WaitExit(std::chrono::seconds(5))) {
      ::kill(pid_, SIGKILL);
      WaitExit(std::chrono::seconds(5));
    }
  }

  pid_t pid() const { return pid_; }
  int host_fd() const { return host_.get(); }
  // Hands our end to someone else (a GuestChannel); the agent then lives
  // until that end closes or the destructor kills it.
  UniqueFd TakeHostFd() { return std::move(host_); }
  void CloseHostFd() { host_.reset(); }

  // The agent's exit status, or nullopt if it still runs after `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout) {
    if (exit_status_) return exit_status_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int status;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_status_;
      }
      if (r < 0 || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  AgentProcess() = default;
  pid_t pid_ = -1;
  UniqueFd host_;
  std::optional<int> exit_status_;
};

// What one exec produced, as the frames said.
struct ExecOutcome {
  std::optional<int> pid;  // from "started"
  std::string out;
  std::string err;
  std::optional<protocol::ExecResult> result;  // from "exit"
  std::optional<protocol::ErrorReply> error;   // from "error"
  std::vector<protocol::Frame> frames;         // everything on the stream, in order
};

// A blocking client over a connected fd.
class FrameClient {
 public:
  explicit FrameClient(int fd) : fd_(fd) {}

  bool SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  bool Send(const protocol::Frame& frame) { return SendRaw(protocol::EncodeFrame(frame)); }

  // The next frame or decode error; nullopt on timeout or closed connection.
  std::optional<protocol::DecodeEvent> NextEvent(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto event = decoder_.Next()) return event;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[256 * 1024];
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      decoder_.Feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }

  // The next well-formed frame (decode errors are skipped).
  std::optional<protocol::Frame> Next(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      auto event = NextEvent(std::max(left, std::chrono::milliseconds(0)));
      if (!event) return std::nullopt;
      if (auto* frame = std::get_if<protocol::Frame>(&*event)) return std::move(*frame);
    }
  }

  // Frames of `stream` until a terminal one; frames of other streams are kept
  // for later calls.
  std::vector<protocol::Frame> Collect(
      std::uint32_t stream, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::vector<protocol::Frame> frames;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto take = [&](protocol::Frame frame) {
      bool terminal = IsTerminal(frame.type);
      frames.push_back(std::move(frame));
      return terminal;
    };
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (it->stream == stream) {
        protocol::Frame f = std::move(*it);
        it = parked_.erase(it);
        if (take(std::move(f))) return frames;
      } else {
        ++it;
      }
    }
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return frames;
      auto frame = Next(left);
      if (!frame) return frames;
      if (frame->stream != stream) {
        parked_.push_back(std::move(*frame));
        continue;
      }
      if (take(std::move(*frame))) return frames;
    }
  }

  ExecOutcome Exec(std::uint32_t stream, const protocol::ExecRequest& request,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Send(protocol::ExecFrame(stream, request, request.stdin_data, true));
    return Outcome(stream, timeout);
  }

  ExecOutcome Outcome(std::uint32_t stream,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    ExecOutcome outcome;
    outcome.frames = Collect(stream, timeout);
    for (const protocol::Frame& f : outcome.frames) {
      if (f.type == protocol::kTypeStarted) outcome.pid = protocol::ParseStarted(f).value_or(-1);
      if (f.type == protocol::kTypeStdout) outcome.out += f.payload;
      if (f.type == protocol::kTypeStderr) outcome.err += f.payload;
      if (f.type == protocol::kTypeExit) {
        if (auto r = protocol::ParseExit(f)) outcome.result = *r;
      }
      if (f.type == protocol::kTypeError) {
        if (auto e = protocol::ParseError(f)) outcome.error = *e;
      }
    }
    return outcome;
  }

  bool closed() const { return closed_; }

  static bool IsTerminal(std::string_view type) {
    using namespace protocol;
    return type == kTypeExit || type == kTypeError || type == kTypePong || type == kTypeOk ||
           type == kTypeData;
  }

 private:
  int fd_;
  protocol::FrameDecoder decoder_;
  std::vector<protocol::Frame> parked_;
  bool closed_ = false;
};

// Fixture: a real agent on a socketpair for each test, and a client for it.
class AgentTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    agent_ = AgentProcess::Start({}, &error);
    ASSERT_NE(agent_, nullptr) << error;
    client_ = std::make_unique<FrameClient>(agent_->host_fd());
  }

  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<FrameClient> client_;
};

}  // namespace agentvm::guest::testing
