#include "bench/snapshot_bench.h"

#include <cstdio>
#include <array>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "bench/bench_daemon.h"
#include "bench/boot_bench.h"
#include "bench/http_client.h"
#include "bench/pause.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using json = nlohmann::json;

constexpr int kCpus = 1;
constexpr int kMemoryMib = 256;
// The bench daemon runs in the host's network namespace: no NIC, ever.
constexpr char kNetwork[] = "isolated";

constexpr milliseconds kCreateTimeout{120000};
constexpr milliseconds kCallTimeout{30000};
constexpr milliseconds kExecTimeout{10000};
// The golden snapshot is a cold boot plus a save; the pool then restores
// min_ready clones. Generous, for a loaded 2-core host.
constexpr milliseconds kGoldenTimeout{300000};
constexpr milliseconds kPoolTimeout{240000};
constexpr milliseconds kPollInterval{50};
// After each teardown, so a dying QEMU's exit is not charged to the next create.
constexpr milliseconds kSettle{300};

double SecondsSince(Clock::time_point start) { return Seconds(Clock::now() - start).count(); }

struct PoolStatus {
  json raw;  // for error messages
  std::string name;
  int min_ready = 0;
  int ready = 0;
  int starting = 0;
  int in_use = 0;
  std::uint64_t taken = 0;
  std::uint64_t replaced = 0;
  std::uint64_t failed = 0;
  bool golden_ready = false;
  std::string last_error;

  bool Full() const { return ready >= min_ready; }
  // Full and not restoring anything: no background work to disturb a timing.
  bool Quiet() const { return Full() && starting == 0; }
};

// The one pool of the benchmarked profile, from GET /v1/pools (an object
// {"pools": [...]}, or a bare array).
asio::awaitable<Result<PoolStatus>> GetPool(const std::string& socket, const std::string& image) {
  auto reply = co_await HttpCall(socket, "GET", "/v1/pools", "", kCallTimeout);
  if (!reply) co_return Fail(reply.error().Wrap("GET /v1/pools"));
  if (reply->status != 200) {
    co_return Fail(ErrorCode::kInternal, "GET /v1/pools: " + std::to_string(reply->status) + " " + reply->body);
  }
  json body = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  const json* list = &body;
  if (body.is_object() && body.contains("pools")) list = &body["pools"];
  if (!list->is_array()) co_return Fail(ErrorCode::kInternal, "GET /v1/pools: unexpected body " + reply->body);
  for (const json& pool : *list) {
    if (!pool.is_object() || pool.value("image", "") != image || pool.value("cpus", 0) != kCpus ||
        pool.value("memory_mib", 0) != kMemoryMib || pool.value("network", "") != kNetwork) {
      continue;
    }
    PoolStatus status;
    status.raw = pool;
    status.name = pool.value("name", "");
    status.min_ready = pool.value("min_ready", 0);
    status.ready = pool.value("ready", 0);
    status.starting = pool.value("starting", 0);
    status.in_use = pool.value("in_use", 0);
    status.taken = pool.value("taken", std::uint64_t{0});
    status.replaced = pool.value("replaced", std::uint64_t{0});
    status.failed = pool.value("failed", std::uint64_t{0});
    status.golden_ready = pool.value("golden_ready", false);
    status.last_error = pool.value("last_error", "");
    co_return status;
  }
  co_return Fail(ErrorCode::kNotFound, "GET /v1/pools: no pool of " + image + ", 1 vCPU, 256 MiB, isolated in " +
                                           reply->body);
}

// Polls the pool until `done` holds. A new last_error is echoed to stderr as
// it appears, so a pool that cannot fill says why while the wait goes on.
using PoolCheck = std::function<bool(const PoolStatus&)>;

asio::awaitable<Result<PoolStatus>> WaitForPool(const std::string& socket, const std::string& image,
                                                PoolCheck done, milliseconds timeout,
                                                std::string what) {
  const auto deadline = Clock::now() + timeout;
  std::string reported_error;
  while (true) {
    auto status = co_await GetPool(socket, image);
    if (!status) co_return Fail(status.error());
    if (done(*status)) co_return status;
    if (!status->last_error.empty() && status->last_error != reported_error) {
      reported_error = status->last_error;
      std::cerr << "  pool " << status->name << ": last_error: " << reported_error << "\n";
    }
    if (Clock::now() >= deadline) {
      co_return Fail(ErrorCode::kTimeout, "waiting " + std::to_string(timeout.count() / 1000) + " s for " + what +
                                              "; the pool is now " + status->raw.dump());
    }
    co_await Pause(kPollInterval);
  }
}

struct Created {
  Clock::duration elapsed{};
  std::string id;
  std::string boot;  // how agentvmd says the VM came up: cold, restore, pool
  std::string restore_error;
};

asio::awaitable<Result<Created>> CreateVm(const std::string& socket, const std::string& image,
                                          const std::string& boot) {
  const std::string body = json{{"image", image},
                                {"cpus", kCpus},
                                {"memory_mib", kMemoryMib},
                                {"network", {{"mode", kNetwork}}},
                                {"boot", boot}}
                               .dump();
  const auto start = Clock::now();
  auto reply = co_await HttpCall(socket, "POST", "/v1/vms", body, kCreateTimeout);
  Created created{.elapsed = Clock::now() - start};
  if (!reply) co_return Fail(reply.error().Wrap("POST /v1/vms boot=" + boot));
  if (reply->status != 201) {
    co_return Fail(ErrorCode::kInternal,
                   "POST /v1/vms boot=" + boot + ": " + std::to_string(reply->status) + " " + reply->body);
  }
  auto id = VmIdFromReply(reply->body);
  if (!id) co_return Fail(id.error());
  const json vm = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  created.id = std::move(*id);
  created.boot = vm.value("boot", "");
  created.restore_error = vm.value("restore_error", "");
  co_return created;
}

// DELETE ?force=true, or POST /release for a VM that may belong to a pool.
asio::awaitable<Result<Clock::duration>> DisposeVm(const std::string& socket, const std::string& id, bool release) {
  const std::string method = release ? "POST" : "DELETE";
  const std::string target = release ? "/v1/vms/" + id + "/release" : "/v1/vms/" + id + "?force=true";
  const auto start = Clock::now();
  auto reply = co_await HttpCall(socket, method, target, "", kCallTimeout);
  const auto elapsed = Clock::now() - start;
  if (!reply) co_return Fail(reply.error().Wrap(method + " " + target));
  if (reply->status != 204 && reply->status != 200) {
    co_return Fail(ErrorCode::kInternal,
                   method + " " + target + ": " + std::to_string(reply->status) + " " + reply->body);
  }
  co_return elapsed;
}

asio::awaitable<Result<Clock::duration>> ExecTrue(const std::string& socket, const std::string& id) {
  const std::string body = json{{"argv", json::array({"true"})}}.dump();
  const std::string target = "/v1/vms/" + id + "/exec";
  const auto start = Clock::now();
  auto reply = co_await HttpCall(socket, "POST", target, body, kExecTimeout);
  const auto elapsed = Clock::now() - start;
  if (!reply) co_return Fail(reply.error().Wrap("exec in " + id));
  if (auto ok = CheckExecSucceeded(*reply); !ok) co_return Fail(ok.error().Wrap("exec in " + id));
  co_return elapsed;
}

std::string Ms(Clock::duration d) { return FormatMillis(Seconds(d).count()); }

struct RoundTimes {
  std::optional<Clock::duration> cold, restore, warm;
};

// One round: cold, restore, warm, each on a quiet, full pool.
asio::awaitable<Result<RoundTimes>> RunRound(const std::string& socket, const SnapshotBenchOptions& options,
                                             SnapshotBenchResult& result, bool timed) {
  RoundTimes times;
  // Named: no temporaries of class type inside a co_await expression (g++ 12).
  const PoolCheck quiet = [](const PoolStatus& p) { return p.Quiet(); };
  const std::string quiet_what = "the pool to be full and idle";
  const std::string refill_what = "the pool to refill";
  const std::array<std::string, 2> boots = {"cold", "restore"};

  for (const std::string& boot : boots) {
    auto ready = co_await WaitForPool(socket, options.image, quiet, kPoolTimeout, quiet_what);
    if (!ready) co_return Fail(ready.error());
    auto vm = co_await CreateVm(socket, options.image, boot);
    if (!vm) co_return Fail(vm.error());
    auto first_exec = co_await ExecTrue(socket, vm->id);
    if (!first_exec) co_return Fail(first_exec.error());
    if (timed && vm->boot == boot) {
      (boot == "cold" ? result.first_exec_cold : result.first_exec_restore).Add(*first_exec);
    }
    auto removed = co_await DisposeVm(socket, vm->id, /*release=*/false);
    if (!removed) co_return Fail(removed.error());
    if (timed) result.remove.Add(*removed);
    co_await Pause(kSettle);
    if (boot == "cold") {
      if (vm->boot != "cold") {
        co_return Fail(ErrorCode::kInternal, "boot=cold answered with boot \"" + vm->boot + "\"");
      }
      times.cold = vm->elapsed;
    } else if (vm->boot == "restore") {
      times.restore = vm->elapsed;
    } else {
      std::cerr << "  boot=restore came up as \"" << vm->boot << "\" in " << Ms(vm->elapsed)
                << "; restore_error: " << vm->restore_error << "\n";
      if (timed) {
        ++result.restore_fell_back;
        result.restore_error = vm->restore_error;
      }
    }
  }

  auto full = co_await WaitForPool(socket, options.image, quiet, kPoolTimeout, quiet_what);
  if (!full) co_return Fail(full.error());
  auto vm = co_await CreateVm(socket, options.image, "auto");
  if (!vm) co_return Fail(vm.error());
  auto first_exec = co_await ExecTrue(socket, vm->id);
  if (!first_exec) co_return Fail(first_exec.error());
  if (timed && vm->boot == "pool") result.first_exec_warm.Add(*first_exec);
  const auto release_start = Clock::now();
  auto released = co_await DisposeVm(socket, vm->id, /*release=*/true);
  if (!released) co_return Fail(released.error());
  auto refilled = co_await WaitForPool(socket, options.image, quiet, kPoolTimeout, refill_what);
  if (!refilled) co_return Fail(refilled.error());
  if (timed) {
    result.release.Add(*released);
    result.refill.Add(Clock::now() - release_start);
  }
  co_await Pause(kSettle);
  if (vm->boot == "pool") {
    times.warm = vm->elapsed;
  } else {
    std::cerr << "  boot=auto on a full pool came up as \"" << vm->boot << "\" in " << Ms(vm->elapsed) << "\n";
    if (timed) ++result.warm_not_from_pool;
  }
  co_return times;
}

asio::awaitable<Result<void>> RunRecycle(const std::string& socket, const SnapshotBenchOptions& options,
                                         SnapshotBenchResult& result) {
  const PoolCheck quiet = [](const PoolStatus& p) { return p.Quiet(); };
  const std::string quiet_what = "the pool to be full and idle";
  auto ready = co_await WaitForPool(socket, options.image, quiet, kPoolTimeout, quiet_what);
  if (!ready) co_return Fail(ready.error());

  const auto start = Clock::now();
  const auto end = start + options.recycle_duration;
  auto next_progress = start + std::chrono::seconds(15);
  while (Clock::now() < end) {
    auto vm = co_await CreateVm(socket, options.image, "auto");
    if (!vm) co_return Fail(vm.error().Wrap("recycle, cycle " + std::to_string(result.recycled + 1)));
    if (vm->boot == "pool") {
      ++result.recycle_from_pool;
      result.recycle_acquire_pool.Add(vm->elapsed);
    } else {
      if (vm->boot == "restore") ++result.recycle_from_restore;
      else ++result.recycle_from_cold;
      result.recycle_acquire_other.Add(vm->elapsed);
    }
    auto exec = co_await ExecTrue(socket, vm->id);
    if (!exec) co_return Fail(exec.error().Wrap("recycle, cycle " + std::to_string(result.recycled + 1)));
    result.recycle_exec.Add(*exec);
    auto released = co_await DisposeVm(socket, vm->id, /*release=*/true);
    if (!released) co_return Fail(released.error().Wrap("recycle, cycle " + std::to_string(result.recycled + 1)));
    result.recycle_release.Add(*released);
    ++result.recycled;
    if (Clock::now() >= next_progress) {
      next_progress += std::chrono::seconds(15);
      std::cerr << "  recycle: " << result.recycled << " VMs in " << static_cast<int>(SecondsSince(start))
                << " s (" << result.recycle_from_pool << " from the pool)\n";
    }
  }
  result.recycle_seconds = SecondsSince(start);

  auto after = co_await GetPool(socket, options.image);
  if (!after) co_return Fail(after.error());
  result.pool_ready_after = after->ready;
  result.pool_starting_after = after->starting;
  result.pool_replaced = after->replaced;
  result.pool_failed = after->failed;
  result.pool_last_error = after->last_error;
  co_return Result<void>{};
}

std::string Row(std::initializer_list<std::string> cells) {
  std::string row = "|";
  for (const auto& cell : cells) row += " " + cell + " |";
  return row + "\n";
}

std::string Fixed(double value, const char* format = "%.1f") {
  char text[32];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

}  // namespace

std::vector<std::string> SnapshotDaemonFlags(const SnapshotBenchOptions& options) {
  std::vector<std::string> flags = {"--pool", "image=" + options.image + ",cpus=" + std::to_string(kCpus) +
                        ",memory_mib=" + std::to_string(kMemoryMib) + ",network=" + kNetwork +
                        ",min_ready=" + std::to_string(options.pool_min_ready) +
                        ",max_total=" + std::to_string(options.pool_max_total) +
                        (options.fill_parallelism > 0 ? ",fill_parallelism=" + std::to_string(options.fill_parallelism)
                                                      : std::string())};
  if (!options.memory_templates.empty()) {
    flags.insert(flags.end(), {"--memory-templates", options.memory_templates});
  }
  return flags;
}

asio::awaitable<Result<SnapshotBenchResult>> RunSnapshotBench(BenchDaemon& daemon, SnapshotBenchOptions options) {
  SnapshotBenchResult result;
  const std::string& socket = daemon.socket();

  std::cerr << "  snapshots: waiting for the golden snapshot\n";
  const PoolCheck golden_ready = [](const PoolStatus& p) { return p.golden_ready; };
  const std::string golden_what = "the golden snapshot";
  auto golden = co_await WaitForPool(socket, options.image, golden_ready, kGoldenTimeout, golden_what);
  if (!golden) co_return Fail(golden.error());
  result.golden_build = SecondsSince(options.daemon_started);
  result.pool_name = golden->name;
  std::cerr << "  snapshots: golden snapshot ready after " << FormatSeconds(result.golden_build)
            << "; waiting for " << options.pool_min_ready << " ready VMs in pool " << result.pool_name << "\n";
  const PoolCheck full = [](const PoolStatus& p) { return p.Full(); };
  const std::string full_what = "the pool to fill";
  auto filled = co_await WaitForPool(socket, options.image, full, kPoolTimeout, full_what);
  if (!filled) co_return Fail(filled.error());
  result.pool_filled = SecondsSince(options.daemon_started);
  std::cerr << "  snapshots: pool full after " << FormatSeconds(result.pool_filled) << "\n";

  const int total = options.warmups + options.rounds;
  for (int i = 0; i < total; ++i) {
    const bool timed = i >= options.warmups;
    const std::string label = timed ? "round " + std::to_string(i - options.warmups + 1) + "/" +
                                          std::to_string(options.rounds)
                                    : "warm-up " + std::to_string(i + 1);
    auto round = co_await RunRound(socket, options, result, timed);
    if (!round) co_return Fail(round.error().Wrap("snapshots, " + label));
    std::cerr << "  snapshots " << label << ": cold " << (round->cold ? Ms(*round->cold) : "-") << ", restore "
              << (round->restore ? Ms(*round->restore) : "-") << ", warm "
              << (round->warm ? Ms(*round->warm) : "-") << "\n";
    if (!timed) continue;
    if (round->cold) result.cold.Add(*round->cold);
    if (round->restore) result.restore.Add(*round->restore);
    if (round->warm) result.warm.Add(*round->warm);
    const double cold = round->cold ? Seconds(*round->cold).count() : 0;
    if (cold > 0 && round->restore) result.restore_ratio.AddValue(Seconds(*round->restore).count() / cold);
    if (cold > 0 && round->warm) result.warm_ratio.AddValue(Seconds(*round->warm).count() / cold);
  }

  std::cerr << "  snapshots: recycle loop (acquire, exec true, release) for " << options.recycle_duration.count()
            << " s\n";
  auto recycled = co_await RunRecycle(socket, options, result);
  if (!recycled) co_return Fail(recycled.error());
  co_return result;
}

std::string RenderSnapshotReport(const SnapshotBenchResult& r, const SnapshotBenchOptions& o) {
  std::ostringstream out;
  const double restore_ratio = r.cold.Median() > 0 ? r.restore.Median() / r.cold.Median() : 0;
  const double warm_p50 = r.warm.Median();
  out << "\n### 5. Golden snapshots and the warm pool (issue 4)\n\n"
      << "agentvmd with one pool, `" << r.pool_name << "` (min_ready " << o.pool_min_ready << ", max_total "
      << o.pool_max_total << "). " << r.cold.size() << " rounds of (cold, restore, warm), after " << o.warmups
      << " untimed round; each create is `POST /v1/vms` until its `201`, each on a full, idle pool.\n\n"
      << Row({"", "median", "min", "max"}) << Row({"---", "---:", "---:", "---:"})
      << Row({"(a) cold boot: `\"boot\": \"cold\"`", FormatSeconds(r.cold.Median()), FormatSeconds(r.cold.Min()),
              FormatSeconds(r.cold.Max())})
      << Row({"(b) restore of the golden snapshot: `\"boot\": \"restore\"`", FormatMillis(r.restore.Median()),
              FormatMillis(r.restore.Min()), FormatMillis(r.restore.Max())})
      << Row({"(c) warm acquire from the full pool: `\"boot\": \"auto\"`", FormatMillis(r.warm.Median()),
              FormatMillis(r.warm.Min()), FormatMillis(r.warm.Max())})
      << Row({std::string("**ratio restore / cold** (goal ≤ 0.15: ") + (restore_ratio <= 0.15 ? "met" : "missed") +
                  ")",
              "**" + FormatRatio(r.restore.Median(), r.cold.Median()) + "**",
              FormatRatio(r.restore.Min(), r.cold.Min()), ""})
      << Row({"ratio restore / cold in each round", FormatRatio(r.restore_ratio.Median(), 1),
              FormatRatio(r.restore_ratio.Min(), 1), FormatRatio(r.restore_ratio.Max(), 1)})
      << Row({"**ratio warm / cold**", "**" + Fixed(r.cold.Median() > 0 ? r.warm.Median() / r.cold.Median() : 0,
                                                     "%.4f") + "**",
              Fixed(r.cold.Min() > 0 ? r.warm.Min() / r.cold.Min() : 0, "%.4f"), ""})
      << Row({"ratio warm / cold in each round", Fixed(r.warm_ratio.Median(), "%.4f"),
              Fixed(r.warm_ratio.Min(), "%.4f"), Fixed(r.warm_ratio.Max(), "%.4f")})
      << "\n**Warm acquire: p50 " << FormatMillis(warm_p50) << ", p90 " << FormatMillis(r.warm.Percentile(0.9))
      << "** (goal p50 < 10 ms: " << (warm_p50 > 0 && warm_p50 < 0.010 ? "met" : "missed")
      << "; nearest rank over " << r.warm.size() << ").\n";
  if (r.restore_fell_back > 0) {
    out << "\n" << r.restore_fell_back << " `boot: restore` create(s) came up by a cold boot instead and are left out"
        << " of row (b); agentvmd's restore_error: `" << r.restore_error << "`.\n";
  }
  if (r.warm_not_from_pool > 0) {
    out << "\n" << r.warm_not_from_pool << " warm acquire(s) on a full pool were not answered from the pool and are"
        << " left out of row (c).\n";
  }
  out << "\nThe first `exec true` in each VM right after its `201` (not in the rows above), median: cold "
      << FormatMillis(r.first_exec_cold.Median()) << ", restore " << FormatMillis(r.first_exec_restore.Median())
      << ", warm " << FormatMillis(r.first_exec_warm.Median()) << ".\n";
  out << "\nNot counted: `DELETE /v1/vms/{id}?force=true` of a cold or restored VM, median "
      << FormatMillis(r.remove.Median()) << "; `POST /v1/vms/{id}/release` of the warm VM, median "
      << FormatMillis(r.release.Median()) << "; from release until the pool was full again, median "
      << FormatSeconds(r.refill.Median()) << ".\n";

  const double per_minute = r.recycle_seconds > 0 ? r.recycled * 60.0 / r.recycle_seconds : 0;
  out << "\n**Recycle throughput**, pool of " << o.pool_min_ready << ": for " << o.recycle_duration.count()
      << " s, one client loops `POST /v1/vms {\"boot\": \"auto\"}`, `POST /v1/vms/{id}/exec {\"argv\": [\"true\"]}`,"
      << " `POST /v1/vms/{id}/release`.\n\n"
      << Row({"recycle loop", "value"}) << Row({"---", "---:"})
      << Row({"cycles completed in " + FormatSeconds(r.recycle_seconds), std::to_string(r.recycled)})
      << Row({"**VMs per minute**", "**" + Fixed(per_minute) + "**"})
      << Row({"acquires answered from the pool (`boot: pool`)", std::to_string(r.recycle_from_pool)})
      << Row({"acquires that fell back to a restore", std::to_string(r.recycle_from_restore)})
      << Row({"acquires that fell back to a cold boot", std::to_string(r.recycle_from_cold)})
      << Row({"acquire from the pool, p50 / p90",
              FormatMillis(r.recycle_acquire_pool.Median()) + " / " +
                  FormatMillis(r.recycle_acquire_pool.Percentile(0.9))})
      << Row({"acquire by fallback, p50", r.recycle_acquire_other.empty()
                                               ? std::string("-")
                                               : FormatMillis(r.recycle_acquire_other.Median())})
      << Row({"exec `true`, p50 / p90", FormatMillis(r.recycle_exec.Median()) + " / " +
                                             FormatMillis(r.recycle_exec.Percentile(0.9))})
      << Row({"release, p50 / p90", FormatMillis(r.recycle_release.Median()) + " / " +
                                         FormatMillis(r.recycle_release.Percentile(0.9))})
      << "\nPool after the loop: " << r.pool_ready_after << " ready, " << r.pool_starting_after
      << " starting; replaced " << r.pool_replaced << ", failed " << r.pool_failed
      << (r.pool_last_error.empty() ? std::string("") : "; last_error: `" + r.pool_last_error + "`") << ".\n"
      << "\nFor information: the golden snapshot was ready " << FormatSeconds(r.golden_build)
      << " after agentvmd was started (a cold boot to agent-ready, then the state saved and the disk frozen), "
      << "and the pool first had " << o.pool_min_ready << " ready VMs after " << FormatSeconds(r.pool_filled)
      << ".\n";
  return out.str();
}

}  // namespace agentvm::bench
