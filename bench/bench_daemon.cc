#include "bench/bench_daemon.h"

#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench/http_client.h"
#include "bench/processes.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

constexpr milliseconds kStartTimeout{20000};
constexpr milliseconds kStopTimeout{30000};

}  // namespace

BenchDaemon::BenchDaemon(BenchDaemonOptions options)
    : options_(std::move(options)), socket_((options_.root / "api.sock").string()) {}

asio::awaitable<Result<std::unique_ptr<BenchDaemon>>> BenchDaemon::Start(BenchDaemonOptions options) {
  auto executor = co_await asio::this_coro::executor;
  std::unique_ptr<BenchDaemon> daemon(new BenchDaemon(std::move(options)));
  const auto& root = daemon->options_.root;
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) co_return Fail(ErrorCode::kInternal, "create " + root.string() + ": " + ec.message());

  std::vector<std::string> argv = {
      daemon->options_.binary, "--socket", daemon->socket_,
      "--state-dir", (root / "state").string(), "--run-dir", daemon->run_dir().string(),
      "--image-dir", daemon->options_.image_dir, "--accel", "tcg",
      // A VM left running on an interrupted benchmark is killed promptly.
      "--stop-grace", "1",
      // Never nat-filtered here: that would build a bridge and nftables in
      // the host's own network namespace.
      "--default-network", "isolated",
  };
  argv.insert(argv.end(), daemon->options_.extra_args.begin(), daemon->options_.extra_args.end());
  auto launched = ChildProcess::Launch(
      executor, LaunchSpec{.argv = argv, .stderr_path = daemon->log_path().string()});
  if (!launched) co_return Fail(launched.error().Wrap("start agentvmd"));
  daemon->process_ = std::move(*launched);
  TrackProcess(daemon->process_->pid(), ProcessKind::kDaemon, daemon->run_dir());

  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    auto reply = co_await HttpCall(daemon->socket_, "GET", "/v1/vms", "", milliseconds(2000));
    if (reply && reply->status == 200) break;
    if (WaitChildExit(daemon->process_->pid(), milliseconds(0))) {
      co_return Fail(ErrorCode::kUnavailable, "agentvmd exited at start; see " + daemon->log_path().string());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return Fail(ErrorCode::kTimeout, "agentvmd did not answer within 20 s; see " + daemon->log_path().string());
    }
    asio::steady_timer pause(executor, milliseconds(50));
    boost::system::error_code wait_ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
  }
  co_return daemon;
}

BenchDaemon::~BenchDaemon() {
  if (!process_) return;
  const pid_t pid = process_->pid();
  process_->Kill(SIGTERM);
  if (!WaitChildExit(pid, kStopTimeout)) {
    process_->Kill(SIGKILL);
    WaitChildExit(pid, milliseconds(5000));
    KillQemusUnder(run_dir());
  }
  process_.reset();  // reaps
  UntrackProcess(pid);
  if (!options_.save_log_to.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.save_log_to.parent_path(), ec);
    std::filesystem::copy_file(log_path(), options_.save_log_to, std::filesystem::copy_options::overwrite_existing,
                               ec);
    if (ec) std::fprintf(stderr, "agentvm-bench: could not save %s: %s\n", log_path().c_str(), ec.message().c_str());
  }
}

std::string BenchDaemon::LogTail(int lines) const {
  std::ifstream in(log_path());
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string text;
  for (const auto& kept : tail) text += kept + "\n";
  return text;
}

}  // namespace agentvm::bench
