#include "supervisor/vm_pool.h"

#include <algorithm>
#include <thread>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/logging.h"
#include "common/spawn.h"

namespace agentvm {
namespace {

using std::chrono::seconds;

std::shared_ptr<spdlog::logger> Log() { return Logger("pool"); }

// After a failed clone, wait before the next try, doubling up to the cap, so
// a broken image or a full disk does not spin the CPU.
constexpr seconds kFirstRetryDelay{2};
constexpr seconds kMaxRetryDelay{60};

}  // namespace

VmPool::VmPool(boost::asio::any_io_executor executor, PoolConfig config, NetworkMode network,
               seconds health_interval, Hooks hooks)
    : executor_(executor),
      config_(std::move(config)),
      network_(network),
      health_interval_(health_interval),
      hooks_(std::move(hooks)),
      name_(NameOf(config_.image, config_.cpus, config_.memory_mib, network)),
      retry_delay_(kFirstRetryDelay),
      loop_ended_(executor),
      health_wake_(executor) {
  for (int i = 0; i < Fillers(config_); ++i) fill_wakes_.push_back(std::make_unique<boost::asio::steady_timer>(executor));
}

int VmPool::Fillers(const PoolConfig& config) {
  if (config.fill_parallelism > 0) return config.fill_parallelism;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
}

VmPool::~VmPool() = default;

std::string VmPool::NameOf(const std::string& image, int cpus, int memory_mib, NetworkMode network) {
  return image + "-" + std::to_string(cpus) + "c-" + std::to_string(memory_mib) + "m-" +
         std::string(NetworkModeName(network));
}

bool VmPool::Matches(const CreateVmRequest& request, NetworkMode network) const {
  const NetworkRequest& net = request.network;
  const bool plain_network = net.allow_tcp_ports.empty() && net.allow_cidrs.empty() &&
                             net.allow_domains.empty() && net.presets.empty() && net.bridge.empty() &&
                             !net.bandwidth_bytes_per_sec;
  return request.image == config_.image && request.cpus == config_.cpus &&
         request.memory_mib == config_.memory_mib && network == network_ && plain_network;
}

void VmPool::Start() {
  Log()->info("{}: min_ready {}, max_total {}, ttl {}s, {} filler(s)", name_, config_.min_ready,
              config_.max_total, config_.ttl.count(), fill_wakes_.size());
  loops_running_ = 1 + static_cast<int>(fill_wakes_.size());
  for (auto& wake : fill_wakes_) SpawnDetached(executor_, FillLoop(*wake), name_ + ": fill loop", Log());
  SpawnDetached(executor_, HealthLoop(), name_ + ": health loop", Log());
}

void VmPool::RequestStop() {
  stopping_ = true;
  Wake();
  health_wake_.cancel();
}

boost::asio::awaitable<void> VmPool::Stop() {
  RequestStop();
  // The loops end at their next step; a clone in flight ends when the
  // Supervisor kills its QEMU.
  while (loops_running_ > 0) co_await loop_ended_.Wait();
  while (!ready_.empty()) {
    std::shared_ptr<Vm> vm = ready_.front();
    ready_.pop_front();
    co_await hooks_.remove(vm);
  }
}

bool VmPool::NeedsMore() const {
  const int ready = static_cast<int>(ready_.size());
  const int total = ready + starting_ + static_cast<int>(in_use_.size());
  return !stopping_ && ready + starting_ < config_.min_ready && total < config_.max_total;
}

void VmPool::Wake() {
  for (auto& wake : fill_wakes_) wake->cancel();
}

boost::asio::awaitable<void> VmPool::Sleep(boost::asio::steady_timer& timer,
                                           std::chrono::steady_clock::duration after) {
  if (stopping_) co_return;
  timer.expires_after(after);
  boost::system::error_code ec;
  co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
}

boost::asio::awaitable<void> VmPool::FillLoop(boost::asio::steady_timer& wake) {
  while (!stopping_) {
    if (!NeedsMore()) {
      co_await Sleep(wake, std::chrono::hours(24));
      continue;
    }
    if (const auto now = std::chrono::steady_clock::now(); now < retry_at_) {
      co_await Sleep(wake, retry_at_ - now);  // a wake-up re-checks and sleeps on
      continue;
    }
    ++starting_;
    Result<std::shared_ptr<Vm>> made = co_await hooks_.make();
    --starting_;
    if (!made) {
      if (stopping_) break;  // killed by the shutdown, not a failure
      ++failed_;
      last_error_ = made.error().message;
      Log()->warn("{}: clone failed ({}); retrying in {}s", name_, last_error_, retry_delay_.count());
      retry_at_ = std::chrono::steady_clock::now() + retry_delay_;
      retry_delay_ = std::min(retry_delay_ * 2, kMaxRetryDelay);
      continue;
    }
    retry_delay_ = kFirstRetryDelay;
    if (stopping_) {
      co_await hooks_.remove(*made);
      break;
    }
    ready_.push_back(std::move(*made));
    Log()->debug("{}: {} ready", name_, ready_.size());
  }
  --loops_running_;
  loop_ended_.Notify();
}

boost::asio::awaitable<void> VmPool::HealthLoop() {
  while (!stopping_) {
    co_await Sleep(health_wake_, health_interval_);
    // A copy: Take() and Replace() change ready_ while this awaits pings.
    const std::deque<std::shared_ptr<Vm>> checking = ready_;
    for (const std::shared_ptr<Vm>& vm : checking) {
      if (stopping_) break;
      if (std::find(ready_.begin(), ready_.end(), vm) == ready_.end()) continue;  // taken meanwhile
      if (vm->Age() > config_.ttl) {
        co_await Replace(vm, "older than its TTL of " + std::to_string(config_.ttl.count()) + "s");
        continue;
      }
      auto alive = co_await hooks_.check(*vm);
      if (!alive && std::find(ready_.begin(), ready_.end(), vm) != ready_.end()) {
        co_await Replace(vm, "failed its health check: " + alive.error().message);
      }
    }
  }
  --loops_running_;
  loop_ended_.Notify();
}

boost::asio::awaitable<void> VmPool::Replace(std::shared_ptr<Vm> vm, const std::string& why) {
  std::erase(ready_, vm);
  ++replaced_;
  Log()->info("{}: replacing {}: {}", name_, vm->id(), why);
  Wake();
  co_await hooks_.remove(std::move(vm));
}

std::shared_ptr<Vm> VmPool::Take() {
  // Whatever happens below leaves fewer VMs ready: the filler decides.
  if (!ready_.empty()) Wake();
  while (!ready_.empty()) {
    std::shared_ptr<Vm> vm = ready_.front();
    ready_.pop_front();
    if (vm->state() != VmState::kRunning) {
      // Died since its last health check: not one to hand out.
      ++replaced_;
      SpawnDetached(executor_, hooks_.remove(vm), name_ + ": removing " + vm->id(), Log());
      continue;
    }
    vm->Claim();
    in_use_.insert(vm->id());
    ++taken_;
    return vm;
  }
  return nullptr;
}

void VmPool::Returned(const std::string& vm_id) {
  if (in_use_.erase(vm_id) > 0) Wake();
}

PoolInfo VmPool::Info() const {
  return PoolInfo{
      .name = name_,
      .image = config_.image,
      .cpus = config_.cpus,
      .memory_mib = config_.memory_mib,
      .network = network_,
      .min_ready = config_.min_ready,
      .max_total = config_.max_total,
      .fill_parallelism = static_cast<int>(fill_wakes_.size()),
      .ready = static_cast<int>(ready_.size()),
      .starting = starting_,
      .in_use = static_cast<int>(in_use_.size()),
      .taken = taken_,
      .replaced = replaced_,
      .failed = failed_,
      .golden_ready = hooks_.golden_ready ? hooks_.golden_ready() : false,
      .last_error = last_error_,
  };
}

}  // namespace agentvm
