#include "tests/support/daemon.h"

#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>
#include <gtest/gtest.h>

namespace agentvm::testing {
namespace bp = boost::process;

Daemon::Daemon(DaemonOptions options) : root_("avmd") {
  socket_ = (root_.path() / "agentvm.sock").string();
  args_ = {BinPath("agentvmd"),
           "--socket", socket_,
           "--state-dir", state_dir(),
           "--run-dir", run_dir(),
           "--image-dir", options.image_dir.empty() ? ImageDir() : options.image_dir,
           "--accel", "tcg",
           "--log-level", "debug"};
  // A daemon in the root namespace must never build a bridge or ruleset there.
  if (options.netns.empty() &&
      std::find(options.extra_args.begin(), options.extra_args.end(), "--default-network") ==
          options.extra_args.end()) {
    args_.insert(args_.end(), {"--default-network", "isolated"});
  }
  if (!options.golden_snapshots) args_.push_back("--no-golden-snapshots");
  args_.insert(args_.end(), options.extra_args.begin(), options.extra_args.end());
  if (!options.netns.empty()) args_.insert(args_.begin(), {"ip", "netns", "exec", options.netns});
  Start();
}

void Daemon::Start() {
  boost::filesystem::path program = args_[0];
  if (args_[0].find('/') == std::string::npos) program = bp::search_path(args_[0]);
  // One log file per start; Log() reads them in order.
  const std::string log = (root_.path() / ("agentvmd." + std::to_string(starts_++) + ".log")).string();
  child_ = std::make_unique<bp::child>(bp::exe = program,
                                       bp::args = std::vector<std::string>(args_.begin() + 1, args_.end()),
                                       bp::std_in < bp::null, bp::std_out > log, bp::std_err > log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!std::filesystem::exists(socket_) && child_->running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!std::filesystem::exists(socket_)) {
    ADD_FAILURE() << "agentvmd did not create " << socket_ << "; its log:\n" << Log();
  }
}

void Daemon::CrashAndRestart() {
  Crash();
  Restart();
}

void Daemon::Crash() {
  if (child_ && child_->running()) {
    ::kill(child_->id(), SIGKILL);
    WaitWithTimeout(*child_, std::chrono::seconds(10));
  }
}

void Daemon::Terminate() {
  if (!child_ || !child_->running()) return;
  ::kill(child_->id(), SIGTERM);
  if (!WaitWithTimeout(*child_, std::chrono::seconds(60))) {
    ADD_FAILURE() << "agentvmd did not exit within 60s of SIGTERM. Log:\n" << Log();
    return;
  }
  EXPECT_EQ(child_->exit_code(), 0) << Log();
}

void Daemon::Restart() {
  // A killed daemon cannot remove its socket; the next one replaces it.
  std::filesystem::remove(socket_);
  Start();
}

Daemon::~Daemon() {
  if (child_ && child_->running()) {
    ::kill(child_->id(), SIGTERM);
    std::error_code ec;
    if (!WaitWithTimeout(*child_, std::chrono::seconds(60))) {
      ADD_FAILURE() << "agentvmd did not exit within 60s of SIGTERM; killing it. Log:\n" << Log();
      child_->terminate(ec);
    } else {
      EXPECT_EQ(child_->exit_code(), 0) << "agentvmd exited badly after SIGTERM. Log:\n" << Log();
    }
  }
  EXPECT_FALSE(ProcessWithArgExists(run_dir() + "/")) << "a QEMU of this daemon outlived it";
}

bool Daemon::running() const { return child_ && child_->running(); }

long Daemon::PeakRssKib() const {
  if (!running()) return -1;
  std::ifstream status("/proc/" + std::to_string(child_->id()) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

CommandResult Daemon::Cli(const std::vector<std::string>& args, std::chrono::seconds timeout) const {
  std::vector<std::string> argv = {BinPath("agentvm"), "--socket", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout);
}

std::string Daemon::CreateVm(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"create"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto created = Cli(argv);
  EXPECT_EQ(created.exit_code, 0) << created.err << Log();
  std::string id = created.out;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  return created.exit_code == 0 ? id : "";
}

std::pair<int, std::string> Daemon::Http(const std::string& method, const std::string& target,
                                         const std::string& body) const {
  std::vector<std::string> argv = {"curl", "-sS", "--unix-socket", socket_, "-X", method,
                                   "-o", "-", "-w", "\n%{http_code}"};
  if (!body.empty()) argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  argv.push_back("http://agentvm" + target);
  CommandResult result = RunCommand(argv, std::chrono::seconds(60));
  const auto newline = result.out.rfind('\n');
  if (newline == std::string::npos) return {0, result.out + result.err};
  return {std::atoi(result.out.c_str() + newline + 1), result.out.substr(0, newline)};
}

std::string Daemon::Log() const {
  std::stringstream buffer;
  for (int i = 0; i < starts_; ++i) {
    std::ifstream in(root_.path() / ("agentvmd." + std::to_string(i) + ".log"));
    buffer << in.rdbuf();
  }
  return buffer.str();
}

nlohmann::json Daemon::Inspect(const std::string& id) const {
  auto [status, body] = Http("GET", "/v1/vms/" + id);
  EXPECT_EQ(status, 200) << body;
  return nlohmann::json::parse(body, nullptr, false);
}

nlohmann::json Daemon::WaitSettled(const std::string& id) const {
  nlohmann::json info;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < deadline) {
    info = Inspect(id);
    if (info.value("state", "") != "starting") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return info;
}

std::filesystem::path Daemon::GoldenSnapshotDir(std::chrono::seconds limit) const {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(state_dir()) / "golden";
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      // ".tmp-*" and ".trash-*" are saves and removals under way.
      if (!entry.path().filename().string().starts_with(".") && fs::exists(entry.path() / "meta.json")) {
        return entry.path();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << "no golden snapshot in " << root << " after " << limit.count() << "s\n" << Log();
  return {};
}

void FlipByteAt(const std::filesystem::path& file, std::uintmax_t offset) {
  ::chmod(file.c_str(), 0644);
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  stream.seekg(static_cast<std::streamoff>(offset));
  const char byte = static_cast<char>(stream.get());
  stream.seekp(static_cast<std::streamoff>(offset));
  stream.put(static_cast<char>(byte ^ 0x5a));
  if (!stream) ADD_FAILURE() << "could not flip byte " << offset << " of " << file;
}

}  // namespace agentvm::testing
