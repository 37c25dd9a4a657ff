#include "bench/bench_daemon.h"

#include <csignal>

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

  const std::vector<std::string> argv = {
      daemon->options_.binary, "--socket", daemon->socket_,
      "--state-dir", (root / "state").string(), "--run-dir", daemon->run_dir().string(),
      "--image-dir", daemon->options_.image_dir, "--accel", "tcg",
      // A VM left running on an interrupted benchmark is killed promptly.
      "--stop-grace", "1",
  };
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
}

}  // namespace agentvm::bench
