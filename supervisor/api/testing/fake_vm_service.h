// FakeVmService: a VmService over a map of pretend VMs, for the API's and the
// CLI's tests. Header-only so each test binary just includes it.
//
// Exec runs a tiny script given as argv, one instruction per element:
//   out:TEXT / err:TEXT   TEXT on stdout / stderr, as one chunk
//   bin                   the bytes ff fe 00 80 (not UTF-8) on stdout
//   bulk:N                N bytes of a-z repeated on stdout, in 64 KiB chunks,
//                         as fast as the consumer takes them (flow control)
//   sleep:MS              waits MS milliseconds
//   exit:N / signal:N     how the command ends (default: exit 0)
//   timeout               ends as killed by its timeout
//   fail:MESSAGE          the exec fails (kUnavailable) after what came before
//   cat                   waits for the end of streamed stdin, prints it
//   until-signal          runs until the host sends a signal, ends by it
// Anything else is ignored, so argv like {"sh", "-c", "..."} exits 0.
//
// Pools are what the test puts in `pools`; a create (boot auto) whose image,
// cpus, memory and network mode match a pool with a ready VM takes it from
// there. Named snapshots keep a copy of the VM's files, so restoring one
// brings them back as the real thing brings back the disk.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/notifier.h"
#include "common/spawn.h"
#include "supervisor/event_log.h"
#include "supervisor/vm_service.h"

namespace agentvm::api::testing {

class FakeVmService : public VmService {
 public:
  struct File {
    std::string data;
    std::uint32_t mode = 0;
  };

  // Every call counts, so tests can assert that a refused request never
  // reached the service.
  int calls() const { return calls_.load(); }
  int execs_finished() const { return execs_finished_.load(); }

  std::set<std::string> images = {"tiny"};
  std::map<std::string, VmInfo> vms;
  std::map<std::string, std::map<std::string, File>> files;  // by VM id, then path
  int file_chunks_written = 0;
  std::optional<protocol::ExecRequest> last_exec;
  std::optional<CreateVmRequest> last_create;
  std::vector<std::pair<std::string, bool>> destroyed;  // id, force
  std::vector<std::string> released;
  std::vector<PoolInfo> pools;
  struct Snapshot {
    SnapshotInfo info;
    std::map<std::string, File> files;
  };
  std::map<std::string, std::map<std::string, Snapshot>> snapshots;  // by VM id, then name
  // Applied when a create request names no network mode, as agentvmd applies
  // its configured default.
  NetworkMode default_network_mode = NetworkMode::kNatFiltered;
  // What network.presets may name; expanded into preset_domains as agentvmd does.
  net::EgressPresets egress_presets;
  std::map<std::string, std::vector<net::EgressEntry>> egress;  // by VM id

  boost::asio::awaitable<Result<VmInfo>> Create(CreateVmRequest request) override {
    ++calls_;
    last_create = request;
    if (!images.contains(request.image)) {
      co_return Fail(ErrorCode::kNotFound, "unknown image: " + request.image);
    }
    if (auto expanded = ExpandPresets(egress_presets, request.network); !expanded) co_return Fail(expanded.error());
    VmInfo info;
    int number = next_id_++;
    info.id = "vm-" + std::to_string(number);
    info.image = request.image;
    info.state = VmState::kRunning;
    info.cpus = request.cpus;
    info.memory_mib = request.memory_mib;
    info.pid = 1000 + next_id_;
    info.channel = "virtio-serial";
    info.accel = "tcg";
    info.created_at = static_cast<std::int64_t>(std::time(nullptr));
    info.network = NetworkFor(request.network, number);
    info.boot = request.boot == BootMode::kCold ? "cold" : "restore";
    if (request.boot == BootMode::kAuto) {
      if (PoolInfo* pool = MatchingPool(info); pool && pool->ready > 0) {
        --pool->ready;
        ++pool->in_use;
        ++pool->taken;
        info.boot = "pool";
        info.pool = pool->name;
      }
    }
    vms[info.id] = info;
    co_return info;
  }

  Result<std::vector<VmInfo>> List() override {
    ++calls_;
    std::vector<VmInfo> list;
    for (const auto& [id, info] : vms) list.push_back(info);
    return list;
  }

  Result<VmInfo> Get(const std::string& id) override {
    ++calls_;
    return Find(id);
  }

  boost::asio::awaitable<Result<VmInfo>> Stop(const std::string& id) override {
    ++calls_;
    auto info = Find(id);
    if (!info) co_return info;
    if (info->state == VmState::kStopped) {
      co_return Fail(ErrorCode::kConflict, "VM " + id + " is already stopped");
    }
    vms[id].state = VmState::kStopped;
    vms[id].pid.reset();
    vms[id].reason = "stopped by request";
    co_return vms[id];
  }

  boost::asio::awaitable<Result<void>> Destroy(const std::string& id, bool force) override {
    ++calls_;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    if (info->state == VmState::kRunning && !force) {
      co_return Fail(ErrorCode::kConflict, "VM " + id + " is running; stop it first or force");
    }
    Forget(*info);
    destroyed.emplace_back(id, force);
    co_return Result<void>{};
  }

  boost::asio::awaitable<Result<void>> Release(const std::string& id) override {
    ++calls_;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    Forget(*info);
    released.push_back(id);
    co_return Result<void>{};
  }

  Result<std::vector<PoolInfo>> Pools() override {
    ++calls_;
    return pools;
  }

  Result<std::vector<net::EgressPreset>> Presets() override {
    ++calls_;
    return egress_presets.all();
  }

  // What the test put in `egress` (or egress_logs) for the VM.
  Result<std::vector<net::EgressEntry>> EgressLog(const std::string& id, std::uint64_t after) override {
    ++calls_;
    if (auto info = Find(id); !info) return Fail(info.error());
    if (auto log = egress_logs.find(id); log != egress_logs.end()) return log->second->ring().Since(after);
    std::vector<net::EgressEntry> found;
    for (const net::EgressEntry& entry : egress[id]) {
      if (entry.seq > after) found.push_back(entry);
    }
    return found;
  }

  // A live log the test makes and feeds in egress_logs[id] (erasing it
  // ends its followers' streams, as a removed VM's does).
  std::map<std::string, std::unique_ptr<net::VmEgressLog>> egress_logs;
  Result<std::shared_ptr<net::EgressFollower>> FollowEgressLog(const std::string& id,
                                                               boost::asio::any_io_executor executor) override {
    ++calls_;
    if (auto info = Find(id); !info) return Fail(info.error());
    auto log = egress_logs.find(id);
    if (log == egress_logs.end()) return std::shared_ptr<net::EgressFollower>();
    return log->second->Follow(std::move(executor));
  }

  // As agentvmd: a running nat-filtered VM only; the fields given replace
  // the VM's.
  std::optional<NetworkUpdate> last_network_update;
  Result<VmInfo> UpdateNetwork(const std::string& id, const NetworkUpdate& update) override {
    ++calls_;
    auto info = Running(id);
    if (!info) return Fail(info.error());
    if (info->network.mode != NetworkMode::kNatFiltered) {
      return Fail(ErrorCode::kInvalidArgument, "only a nat-filtered VM's egress policy can change");
    }
    VmInfo& vm = vms[id];
    NetworkUpdate expanded = update;
    if (auto ok = ExpandPresets(egress_presets, vm.network, expanded); !ok) return Fail(ok.error());
    last_network_update = expanded;
    vm.network = ApplyNetworkUpdate(vm.network, expanded);
    return vm;
  }

  boost::asio::awaitable<Result<SnapshotInfo>> SaveSnapshot(const std::string& id,
                                                            const std::string& name) override {
    ++calls_;
    auto info = Running(id);
    if (!info) co_return Fail(info.error());
    auto& saved = snapshots[id];
    if (saved.contains(name)) {
      co_return Fail(ErrorCode::kConflict, "VM " + id + " already has a snapshot named " + name);
    }
    Snapshot snapshot;
    snapshot.info.name = name;
    snapshot.info.vm_state_bytes = 96 << 20;
    snapshot.info.created_at = static_cast<std::int64_t>(std::time(nullptr));
    snapshot.files = files[id];
    saved[name] = snapshot;
    co_return snapshot.info;
  }

  boost::asio::awaitable<Result<std::vector<SnapshotInfo>>> ListSnapshots(const std::string& id) override {
    ++calls_;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    std::vector<SnapshotInfo> list;
    for (const auto& [name, snapshot] : snapshots[id]) list.push_back(snapshot.info);
    co_return list;
  }

  boost::asio::awaitable<Result<void>> RestoreSnapshot(const std::string& id, const std::string& name) override {
    ++calls_;
    auto info = Running(id);
    if (!info) co_return Fail(info.error());
    auto it = snapshots[id].find(name);
    if (it == snapshots[id].end()) co_return NoSuchSnapshot(id, name);
    files[id] = it->second.files;
    co_return Result<void>{};
  }

  boost::asio::awaitable<Result<void>> DeleteSnapshot(const std::string& id, const std::string& name) override {
    ++calls_;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    if (snapshots[id].erase(name) == 0) co_return NoSuchSnapshot(id, name);
    co_return Result<void>{};
  }

  // What tests publish for GET /v1/events to serve; the fake publishes nothing itself.
  EventLog events;
  EventLog& Events() override { return events; }
  // What GET /metrics serves.
  std::string metrics_text = "# TYPE agentvm_boots_total counter\nagentvm_boots_total{mode=\"cold\"} 0\n";
  boost::asio::awaitable<Result<std::string>> MetricsText() override {
    ++calls_;
    co_return metrics_text;
  }

  boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> StartExec(
      const std::string& id, protocol::ExecRequest request) override {
    ++calls_;
    last_exec = request;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    if (info->state != VmState::kRunning) {
      co_return Fail(ErrorCode::kConflict, "VM " + id + " is not running");
    }
    // stdin given with the start is the first of it; it is all of it unless
    // more streams in.
    streamed_stdin = request.stdin_data;
    stdin_closed = !request.stream_stdin;
    auto executor = co_await boost::asio::this_coro::executor;
    // Like the guest, the script sends output only as far as the window has
    // room; the consumer's takes wake it.
    auto room = std::make_shared<Notifier>(executor);
    ExecStream::Options options;
    options.what = "exec " + request.argv.at(0);
    options.output_window = exec_output_window;
    ExecStream::Producer producer;
    producer.output_taken = [room](std::uint64_t) { room->Notify(); };
    // Like the guest, the fake acknowledges stdin as it takes it.
    auto self = std::make_shared<std::weak_ptr<ExecStream>>();
    producer.send_stdin = [this, self](std::string_view data, bool eof) -> Result<void> {
      streamed_stdin += data;
      stdin_closed = stdin_closed || eof;
      if (auto exec = self->lock(); exec && !data.empty()) exec->StdinAcknowledged(data.size());
      return {};
    };
    producer.signal = [this](int signal) { exec_signals.push_back(signal); };
    producer.resize = [this](protocol::TerminalSize size) { exec_resizes.push_back(size); };
    auto exec = std::make_shared<ExecStream>(executor, options, std::move(producer));
    *self = exec;
    SpawnDetached(executor, RunScript(request.argv, exec, room), "fake exec " + request.argv.at(0));
    co_return exec;
  }

  // Output a fake exec may queue ahead of its consumer.
  std::uint64_t exec_output_window = protocol::kDefaultOutputWindow;
  std::string streamed_stdin;  // what WriteStdin sent to fake execs
  bool stdin_closed = false;   // ... and whether it said eof
  std::vector<int> exec_signals;                   // signals sent to fake execs
  std::vector<protocol::TerminalSize> exec_resizes;  // their terminals' new sizes

  std::optional<std::uint64_t> fail_file_write_at;  // the chunk at this offset fails, as a full disk would
  boost::asio::awaitable<Result<void>> WriteFileChunk(const std::string& id, const std::string& path,
                                                      std::string data, std::uint64_t offset, bool truncate,
                                                      std::uint32_t mode) override {
    ++calls_;
    ++file_chunks_written;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    if (fail_file_write_at && offset == *fail_file_write_at) {
      co_return Fail(ErrorCode::kInternal, "write " + path + ": No space left on device");
    }
    File& file = files[id][path];
    if (truncate) file = File{{}, mode};
    if (offset != file.data.size()) co_return Fail(ErrorCode::kInvalidArgument, "fake: a chunk out of order");
    file.data += data;
    co_return Result<void>{};
  }

  boost::asio::awaitable<Result<protocol::FileChunk>> ReadFileChunk(const std::string& id, const std::string& path,
                                                                    std::uint64_t offset) override {
    ++calls_;
    auto info = Find(id);
    if (!info) co_return Fail(info.error());
    auto it = files[id].find(path);
    if (it == files[id].end()) co_return Fail(ErrorCode::kNotFound, "no such file: " + path);
    const std::string& data = it->second.data;
    protocol::FileChunk chunk;
    chunk.data = data.substr(std::min<std::size_t>(offset, data.size()), protocol::kFileChunkBytes);
    chunk.info = {data.size(), it->second.mode, offset + chunk.data.size() >= data.size()};
    co_return chunk;
  }

  Result<std::string> Console(const std::string& id, std::size_t max_bytes) override {
    ++calls_;
    auto info = Find(id);
    if (!info) return Fail(info.error());
    std::string log = "[    0.000000] Linux version 6.1.0 (fake)\nagentvm-guest: ready\n";
    if (log.size() > max_bytes) log.erase(0, log.size() - max_bytes);
    return log;
  }

 private:
  // What agentvmd would report for the request: the request's own settings
  // plus made-up names and addresses (VM n gets 10.101.0.(n+1) on agentvm0).
  NetworkInfo NetworkFor(const NetworkRequest& request, int n) const {
    NetworkInfo network;
    network.mode = request.mode.value_or(default_network_mode);
    if (network.mode == NetworkMode::kIsolated) return network;
    network.tap = "avm-vm-" + std::to_string(n);
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:00:%02x:%02x", (n >> 8) & 0xff, n & 0xff);
    network.mac = mac;
    if (network.mode == NetworkMode::kBridge) {
      network.bridge = request.bridge;
      return network;
    }
    network.bridge = "agentvm0";
    network.address = "10.101.0." + std::to_string(n % 250 + 1);
    network.gateway = "10.101.0.1";
    network.dns = "10.101.0.1";
    network.allow_tcp_ports = request.allow_tcp_ports;
    network.allow_cidrs = request.allow_cidrs;
    network.allow_domains = request.allow_domains;
    network.preset_domains = request.preset_domains;
    network.presets = request.presets;
    network.bandwidth_bytes_per_sec = request.bandwidth_bytes_per_sec;
    return network;
  }

  PoolInfo* MatchingPool(const VmInfo& vm) {
    for (PoolInfo& pool : pools) {
      if (pool.image == vm.image && pool.cpus == vm.cpus && pool.memory_mib == vm.memory_mib &&
          pool.network == vm.network.mode) {
        return &pool;
      }
    }
    return nullptr;
  }

  // Removes every trace of the VM; a pooled VM's pool restores a fresh
  // clone in its place.
  void Forget(const VmInfo& vm) {
    for (PoolInfo& pool : pools) {
      if (pool.name != vm.pool) continue;
      if (pool.in_use > 0) --pool.in_use;
      ++pool.ready;
    }
    vms.erase(vm.id);
    files.erase(vm.id);
    snapshots.erase(vm.id);
  }

  Result<VmInfo> Running(const std::string& id) const {
    auto info = Find(id);
    if (info && info->state != VmState::kRunning) {
      return Fail(ErrorCode::kConflict, "VM " + id + " is not running");
    }
    return info;
  }

  static std::unexpected<Error> NoSuchSnapshot(const std::string& id, const std::string& name) {
    return Fail(ErrorCode::kNotFound, "VM " + id + " has no snapshot named " + name);
  }

  Result<VmInfo> Find(const std::string& id) const {
    auto it = vms.find(id);
    if (it == vms.end()) return Fail(ErrorCode::kNotFound, "no such VM: " + id);
    return it->second;
  }

  static boost::asio::awaitable<void> Pause(int ms) {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(ms));
    co_await timer.async_wait(boost::asio::use_awaitable);
  }

  // Queues `data` once the window has room for it.
  static boost::asio::awaitable<void> Emit(std::shared_ptr<ExecStream> exec, std::shared_ptr<Notifier> room,
                                           protocol::OutputStream stream, std::string data) {
    while (exec->queued_bytes() + data.size() > exec->output_window() && !exec->finished()) {
      co_await room->Wait();
    }
    (void)exec->PushOutput(stream, std::move(data));
  }

  boost::asio::awaitable<void> RunScript(std::vector<std::string> argv, std::shared_ptr<ExecStream> exec,
                                         std::shared_ptr<Notifier> room) {
    protocol::ExecResult result;
    result.exit_code = 0;
    for (const std::string& step : argv) {
      auto arg = [&](std::string_view prefix) -> std::optional<std::string> {
        if (step.rfind(prefix, 0) != 0) return std::nullopt;
        return step.substr(prefix.size());
      };
      if (auto text = arg("out:")) {
        co_await Emit(exec, room, protocol::OutputStream::kStdout, *text);
      } else if (auto err = arg("err:")) {
        co_await Emit(exec, room, protocol::OutputStream::kStderr, *err);
      } else if (step == "bin") {
        std::string bytes("\xff\xfe\x00\x80", 4);
        co_await Emit(exec, room, protocol::OutputStream::kStdout, std::move(bytes));
      } else if (auto bytes = arg("bulk:")) {
        // N bytes of a counting pattern, in 64 KiB chunks.
        std::uint64_t total = std::stoull(*bytes);
        for (std::uint64_t sent = 0; sent < total;) {
          std::string chunk(std::min<std::uint64_t>(64 * 1024, total - sent), '\0');
          for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + (sent + i) % 26);
          sent += chunk.size();
          co_await Emit(exec, room, protocol::OutputStream::kStdout, std::move(chunk));
        }
      } else if (step == "cat") {
        // Waits for stdin's end, then prints what came.
        while (!stdin_closed && !exec->finished()) co_await Pause(5);
        std::string input = std::exchange(streamed_stdin, std::string());
        for (std::size_t offset = 0; offset < input.size(); offset += 64 * 1024) {
          std::string piece = input.substr(offset, 64 * 1024);
          co_await Emit(exec, room, protocol::OutputStream::kStdout, std::move(piece));
        }
      } else if (step == "until-signal") {
        // Runs until a signal arrives; ends killed by it.
        while (exec_signals.empty() && !exec->finished()) co_await Pause(5);
        result.exit_code.reset();
        result.signal = exec_signals.empty() ? 9 : exec_signals.back();
      } else if (auto ms = arg("sleep:")) {
        boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor,
                                        std::chrono::milliseconds(std::stoi(*ms)));
        co_await timer.async_wait(boost::asio::use_awaitable);
      } else if (auto code = arg("exit:")) {
        result.exit_code = std::stoi(*code);
      } else if (auto signal = arg("signal:")) {
        result.exit_code.reset();
        result.signal = std::stoi(*signal);
      } else if (step == "timeout") {
        result.exit_code.reset();
        result.signal = 9;
        result.timed_out = true;
      } else if (auto message = arg("fail:")) {
        ++execs_finished_;
        exec->Finish(Fail(ErrorCode::kUnavailable, *message));
        co_return;
      }
    }
    ++execs_finished_;
    exec->Finish(result);
  }

  std::atomic<int> calls_{0};
  std::atomic<int> execs_finished_{0};
  int next_id_ = 1;
};

}  // namespace agentvm::api::testing
