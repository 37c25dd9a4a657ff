#include "bench/boot_bench.h"

#include <iostream>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "bench/bench_daemon.h"
#include "bench/http_client.h"
#include "bench/pause.h"
#include "bench/manual_vm.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

constexpr milliseconds kCreateTimeout{120000};
constexpr milliseconds kDeleteTimeout{30000};
// After each teardown, so a dying QEMU's exit is not charged to the next boot.
constexpr milliseconds kSettle{300};

struct DaemonBoot {
  Clock::duration create{};
  Clock::duration remove{};
};

asio::awaitable<Result<DaemonBoot>> BootThroughDaemon(BenchDaemon& daemon, const std::string& image) {
  DaemonBoot times;
  const std::string body = nlohmann::json{{"image", image}, {"cpus", 1}, {"memory_mib", 256}}.dump();
  auto start = Clock::now();
  auto created = co_await HttpCall(daemon.socket(), "POST", "/v1/vms", body, kCreateTimeout);
  times.create = Clock::now() - start;
  if (!created) co_return Fail(created.error());
  if (created->status != 201) {
    co_return Fail(ErrorCode::kInternal, "POST /v1/vms: " + std::to_string(created->status) + " " + created->body);
  }
  auto id = VmIdFromReply(created->body);
  if (!id) co_return Fail(id.error());

  start = Clock::now();
  auto removed = co_await HttpCall(daemon.socket(), "DELETE", "/v1/vms/" + *id + "?force=true", "", kDeleteTimeout);
  times.remove = Clock::now() - start;
  if (!removed) co_return Fail(removed.error());
  if (removed->status != 204) {
    co_return Fail(ErrorCode::kInternal, "DELETE " + *id + ": " + std::to_string(removed->status) + " " + removed->body);
  }
  co_return times;
}

asio::awaitable<Result<BootPhases>> BootByHand(const BootBenchOptions& options) {
  BootPhases phases;
  // Named, not a braced temporary: g++ 12 miscompiles braced lists inside co_await.
  ManualVmOptions vm_options{.image = options.image, .root = options.hand_root, .id = RandomVmId()};
  auto vm = co_await ManualVm::Boot(std::move(vm_options), &phases);
  if (!vm) co_return Fail(vm.error());
  co_return phases;  // the VM is killed and its files removed here
}

}  // namespace

Result<std::string> VmIdFromReply(const std::string& body) {
  auto vm = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!vm.is_object() || !vm.contains("id") || !vm["id"].is_string()) {
    return Fail(ErrorCode::kInternal, "no VM id in agentvmd's reply: " + body);
  }
  return vm["id"].get<std::string>();
}

asio::awaitable<Result<BootBenchResult>> RunBootBench(BenchDaemon& daemon, BootBenchOptions options) {
  BootBenchResult result;
  const int total = options.warmups + options.runs;
  for (int i = 0; i < total; ++i) {
    const bool timed = i >= options.warmups;
    const std::string label = timed ? "run " + std::to_string(i - options.warmups + 1) + "/" +
                                          std::to_string(options.runs)
                                    : "warm-up " + std::to_string(i + 1);

    auto through_daemon = co_await BootThroughDaemon(daemon, options.image.name);
    if (!through_daemon) co_return Fail(through_daemon.error().Wrap("agentvmd boot, " + label));
    co_await Pause(kSettle);
    auto by_hand = co_await BootByHand(options);
    if (!by_hand) co_return Fail(by_hand.error().Wrap("boot by hand, " + label));
    co_await Pause(kSettle);

    std::cerr << "  boot " << label << ": agentvmd " << FormatSeconds(Seconds(through_daemon->create).count())
              << ", by hand " << FormatSeconds(Seconds(by_hand->total()).count()) << "\n";
    if (!timed) continue;
    result.daemon_create.Add(through_daemon->create);
    result.daemon_delete.Add(through_daemon->remove);
    result.hand_total.Add(by_hand->total());
    result.hand_overlay.Add(by_hand->overlay);
    result.hand_connect.Add(by_hand->connect);
    result.hand_ready.Add(by_hand->ready);
    result.pair_ratio.AddValue(Seconds(through_daemon->create) / Seconds(by_hand->total()));
  }
  co_return result;
}

}  // namespace agentvm::bench
