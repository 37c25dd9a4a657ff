#include "bench/exec_bench.h"

#include <algorithm>
#include <iostream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bench/bench_daemon.h"
#include "bench/boot_bench.h"
#include "bench/http_client.h"
#include "bench/manual_vm.h"
#include "bench/qga_client.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using json = nlohmann::json;

constexpr milliseconds kBootTimeout{120000};
constexpr milliseconds kCallTimeout{10000};
constexpr milliseconds kQgaTimeout{30000};
constexpr char kTrue[] = "/bin/true";

enum class Path { kApi, kApiUser, kApiTty, kDirect, kQga, kDirectPing, kQgaPing };

struct Round {
  Clock::duration elapsed{};
  int polls = 0;  // QGA only
};

// `extra`: fields added to the exec request ("user", "tty").
asio::awaitable<Result<Round>> ExecThroughApi(const std::string& socket, const std::string& target, json extra) {
  json request = {{"argv", json::array({kTrue})}};
  request.update(extra);
  const std::string body = request.dump();
  const auto start = Clock::now();
  auto reply = co_await HttpCall(socket, "POST", target, body, kCallTimeout);
  Round round{.elapsed = Clock::now() - start};
  if (!reply) co_return Fail(reply.error());
  if (auto ok = CheckExecSucceeded(*reply); !ok) co_return Fail(ok.error().Wrap("exec"));
  co_return round;
}

asio::awaitable<Result<Round>> ExecDirect(GuestChannel& agent) {
  protocol::ExecRequest request;
  request.argv = {kTrue};
  protocol::OutputSink discard = [](protocol::OutputStream, std::string_view) {};
  const auto start = Clock::now();
  auto result = co_await agent.Exec(std::move(request), std::move(discard));
  Round round{.elapsed = Clock::now() - start};
  if (!result) co_return Fail(result.error().Wrap("agent exec"));
  if (result->ShellStatus() != 0) co_return Fail(ErrorCode::kInternal, "agent exec: status " + std::to_string(result->ShellStatus()));
  co_return round;
}

asio::awaitable<Result<Round>> ExecThroughQga(QgaClient& qga) {
  json exec_args = {{"path", kTrue}, {"capture-output", true}};
  const auto start = Clock::now();
  auto started = co_await qga.Execute("guest-exec", std::move(exec_args), kCallTimeout);
  if (!started) co_return Fail(started.error());
  const json pid = started->value("pid", json());
  Round round;
  while (true) {
    json status_args = {{"pid", pid}};
    auto status = co_await qga.Execute("guest-exec-status", std::move(status_args), kCallTimeout);
    ++round.polls;
    if (!status) co_return Fail(status.error());
    if (status->value("exited", false)) {
      round.elapsed = Clock::now() - start;
      if (status->value("exitcode", -1) != 0) co_return Fail(ErrorCode::kInternal, "qga exec: " + status->dump());
      co_return round;
    }
  }
}

asio::awaitable<Result<Round>> PingDirect(GuestChannel& agent) {
  const auto start = Clock::now();
  auto pong = co_await agent.Ping(kCallTimeout);
  Round round{.elapsed = Clock::now() - start};
  if (!pong) co_return Fail(pong.error().Wrap("agent ping"));
  co_return round;
}

asio::awaitable<Result<Round>> PingQga(QgaClient& qga) {
  const auto start = Clock::now();
  auto pong = co_await qga.Execute("guest-ping", json(), kCallTimeout);
  Round round{.elapsed = Clock::now() - start};
  if (!pong) co_return Fail(pong.error());
  co_return round;
}

// Host-timed run of a busybox sh loop of `iterations`, with or without
// /bin/true in its body.
asio::awaitable<Result<Clock::duration>> TimeGuestLoop(GuestChannel& agent, int iterations, bool spawn) {
  protocol::ExecRequest request;
  request.argv = {"sh", "-c",
                  "i=0; while [ $i -lt " + std::to_string(iterations) + " ]; do " + (spawn ? "/bin/true; " : "") +
                      "i=$((i+1)); done"};
  protocol::OutputSink discard = [](protocol::OutputStream, std::string_view) {};
  const auto start = Clock::now();
  auto result = co_await agent.Exec(std::move(request), std::move(discard));
  const auto elapsed = Clock::now() - start;
  if (!result) co_return Fail(result.error().Wrap("spawn floor loop"));
  if (result->ShellStatus() != 0) co_return Fail(ErrorCode::kInternal, "spawn floor loop failed");
  co_return elapsed;
}

// One sample of the floor: (loop with /bin/true - empty loop) / iterations.
asio::awaitable<Result<double>> SampleSpawnFloor(GuestChannel& agent) {
  constexpr int kIterations = 100;
  auto with = co_await TimeGuestLoop(agent, kIterations, true);
  if (!with) co_return Fail(with.error());
  auto without = co_await TimeGuestLoop(agent, kIterations, false);
  if (!without) co_return Fail(without.error());
  co_return Seconds(*with - *without).count() / kIterations;
}

std::string_view PathName(Path path) {
  switch (path) {
    case Path::kApi: return "agentvmd API";
    case Path::kApiUser: return "agentvmd API, user root";
    case Path::kApiTty: return "agentvmd API, tty";
    case Path::kDirect: return "agent direct";
    case Path::kQga: return "qemu-ga";
    case Path::kDirectPing: return "agent ping";
    case Path::kQgaPing: return "qemu-ga guest-ping";
  }
  return "";
}

}  // namespace

asio::awaitable<Result<ExecBenchResult>> RunExecBench(BenchDaemon& daemon, ExecBenchOptions options) {
  std::cerr << "  exec: creating a VM through agentvmd and booting one by hand with qemu-ga\n";
  const std::string create_body = json{{"image", options.image.name}}.dump();
  auto created = co_await HttpCall(daemon.socket(), "POST", "/v1/vms", create_body, kBootTimeout);
  if (!created) co_return Fail(created.error().Wrap("create VM"));
  if (created->status != 201) {
    co_return Fail(ErrorCode::kInternal, "POST /v1/vms: " + std::to_string(created->status) + " " + created->body);
  }
  auto id = VmIdFromReply(created->body);
  if (!id) co_return Fail(id.error());
  const std::string exec_target = "/v1/vms/" + *id + "/exec";

  ManualVmOptions vm_options{.image = options.image, .root = options.hand_root, .id = RandomVmId(), .with_qga = true};
  auto vm = co_await ManualVm::Boot(std::move(vm_options));
  if (!vm) co_return Fail(vm.error().Wrap("boot by hand with qemu-ga"));
  // By now the guest is up: qemu-ga starts right after our agent.
  auto qga = co_await QgaClient::Connect((*vm)->qga_socket(), kQgaTimeout);
  if (!qga) co_return Fail(qga.error().Wrap("does image '" + options.image.name + "' ship qemu-ga?"));

  // Named, not built inside co_await (g++ 12 miscompiles that).
  const json plain = json::object();
  const json as_root = {{"user", "root"}};
  const json on_tty = {{"tty", true}};
  ExecBenchResult result;
  long polls = 0;
  // A few floor samples spread over the run, so they see the same load.
  Samples floor_samples;
  const int floor_every = std::max(1, options.runs / 4);
  // Two phases, each interleaved round by round. The API's VM is another
  // QEMU: the host work an API exec leaves behind (its VM settling, the
  // daemon's bookkeeping) landed in whichever exec followed it in the other
  // VM and added about 2 ms to ours directly on this 2-core machine. So the
  // API rows run first, then our agent and qemu-ga side by side in one VM
  // while the other idles.
  const std::vector<Path> api_kinds = {Path::kApi, Path::kApiUser, Path::kApiTty};
  const std::vector<Path> vm_kinds = {Path::kDirect, Path::kQga, Path::kDirectPing, Path::kQgaPing};
  for (const auto* kinds : {&api_kinds, &vm_kinds}) {
    const bool with_floor = kinds == &vm_kinds;
    const int kinds_count = static_cast<int>(kinds->size());
    const int total = options.warmups + options.runs;
    for (int i = 0; i < total; ++i) {
      const bool timed = i >= options.warmups;
      if (with_floor && timed && (i - options.warmups) % floor_every == 0) {
        auto floor = co_await SampleSpawnFloor((*vm)->agent());
        if (!floor) co_return Fail(floor.error());
        floor_samples.AddSeconds(*floor);
      }
      // Rotate who goes first, so no path always follows the same one.
      for (int k = 0; k < kinds_count; ++k) {
        const Path path = (*kinds)[(i + k) % kinds_count];
        Result<Round> round = Fail(ErrorCode::kInternal, "not run");
        if (path == Path::kApi) {
          round = co_await ExecThroughApi(daemon.socket(), exec_target, plain);
        } else if (path == Path::kApiUser) {
          round = co_await ExecThroughApi(daemon.socket(), exec_target, as_root);
        } else if (path == Path::kApiTty) {
          round = co_await ExecThroughApi(daemon.socket(), exec_target, on_tty);
        } else if (path == Path::kDirect) {
          round = co_await ExecDirect((*vm)->agent());
        } else if (path == Path::kQga) {
          round = co_await ExecThroughQga(**qga);
        } else if (path == Path::kDirectPing) {
          round = co_await PingDirect((*vm)->agent());
        } else {
          round = co_await PingQga(**qga);
        }
        if (!round) co_return Fail(round.error().Wrap(std::string(PathName(path)) + ", round " + std::to_string(i)));
        if (!timed) continue;
        if (path == Path::kApi) result.api.Add(round->elapsed);
        if (path == Path::kApiUser) result.api_user.Add(round->elapsed);
        if (path == Path::kApiTty) result.api_tty.Add(round->elapsed);
        if (path == Path::kDirect) result.direct.Add(round->elapsed);
        if (path == Path::kQga) {
          result.qga.Add(round->elapsed);
          polls += round->polls;
        }
        if (path == Path::kDirectPing) result.direct_ping.Add(round->elapsed);
        if (path == Path::kQgaPing) result.qga_ping.Add(round->elapsed);
      }
      if (timed && (i - options.warmups + 1) % 50 == 0) {
        std::cerr << "  exec: " << (with_floor ? "agent and qemu-ga " : "API ") << (i - options.warmups + 1)
                  << "/" << options.runs << " rounds\n";
      }
    }
  }
  result.spawn_floor = floor_samples.Median();
  if (!result.qga.empty()) result.qga_status_polls = static_cast<double>(polls) / static_cast<double>(result.qga.size());

  auto removed = co_await HttpCall(daemon.socket(), "DELETE", "/v1/vms/" + *id + "?force=true", "", kCallTimeout);
  if (!removed || removed->status != 204) {
    co_return Fail(ErrorCode::kInternal, "DELETE " + *id + ": " + (removed ? removed->body : removed.error().message));
  }
  co_return result;
}

}  // namespace agentvm::bench
