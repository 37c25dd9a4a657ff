// VmPool: warm VMs of one profile (image, cpus, memory, network mode), kept
// restored and agent-ready so a matching create is a hand-over, not a boot.
//
// Filling runs in the background: `fill_parallelism` fillers each restore
// one clone at a time (restores are CPU bound: by default one filler per two
// host cores, so a 2-core host restores one at a time and a 16-core host
// eight). Together they keep ready + starting at min_ready while
// ready + starting + in_use stays under max_total. Taking a VM or getting one
// back (released, removed) wakes them; a failed clone holds all of them off
// for a doubling delay.
// A health check every `health_interval` replaces ready VMs whose agent does
// not answer, whose QEMU died, or that are older than the TTL.
//
// The pool never owns a VM's lifetime: the Supervisor makes and removes VMs
// (the hooks); the pool only remembers which of them wait in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/error.h"
#include "common/notifier.h"
#include "supervisor/config.h"
#include "supervisor/vm.h"
#include "supervisor/vm_service.h"

namespace agentvm {

class VmPool {
 public:
  struct Hooks {
    // A fresh clone for the pool: unclaimed, running, with spec.pool set.
    std::function<boost::asio::awaitable<Result<std::shared_ptr<Vm>>>()> make;
    // Removes a VM the pool no longer wants (QEMU, overlay, lease, record).
    std::function<boost::asio::awaitable<void>(std::shared_ptr<Vm>)> remove;
    // The health check of a ready VM: its agent answers (Vm::Ping).
    std::function<boost::asio::awaitable<Result<void>>(Vm&)> check;
    // Whether the profile's golden snapshot exists (for Info()).
    std::function<bool()> golden_ready;
  };

  VmPool(boost::asio::any_io_executor executor, PoolConfig config, NetworkMode network,
         std::chrono::seconds health_interval, Hooks hooks);
  ~VmPool();
  VmPool(const VmPool&) = delete;
  VmPool& operator=(const VmPool&) = delete;

  // "<image>-<cpus>c-<memory>m-<network>".
  static std::string NameOf(const std::string& image, int cpus, int memory_mib, NetworkMode network);
  const std::string& name() const { return name_; }

  // Whether a create request with these (resolved) settings may be served
  // from this pool. Requests with per-VM network rules never are.
  bool Matches(const CreateVmRequest& request, NetworkMode network) const;

  // Starts filling and health checks.
  void Start();
  // Stops filling and health checks at their next step (no new clones).
  void RequestStop();
  // RequestStop(), waits for both loops to end, removes the ready VMs. A
  // clone in flight ends the loop only when it comes up or fails: the
  // Supervisor kills every QEMU at shutdown, so that is quick.
  boost::asio::awaitable<void> Stop();

  // A ready VM, claimed now, or null when none is ready. Never waits.
  std::shared_ptr<Vm> Take();
  // A VM taken from this pool is gone (released or removed): room to refill.
  void Returned(const std::string& vm_id);
  // A VM taken from this pool by an earlier daemon, adopted: it counts as in use.
  void CountInUse(const std::string& vm_id) { in_use_.insert(vm_id); }

  PoolInfo Info() const;

 private:
  boost::asio::awaitable<void> FillLoop(boost::asio::steady_timer& wake);
  boost::asio::awaitable<void> HealthLoop();
  boost::asio::awaitable<void> Replace(std::shared_ptr<Vm> vm, const std::string& why);
  bool NeedsMore() const;
  // The configured fill_parallelism, 0 resolved by the host's cores.
  static int Fillers(const PoolConfig& config);
  void Wake();
  // Waits on `timer` until it is cancelled or `after` passes.
  boost::asio::awaitable<void> Sleep(boost::asio::steady_timer& timer, std::chrono::steady_clock::duration after);

  boost::asio::any_io_executor executor_;
  PoolConfig config_;
  NetworkMode network_;
  std::chrono::seconds health_interval_;
  Hooks hooks_;
  std::string name_;

  std::deque<std::shared_ptr<Vm>> ready_;
  int starting_ = 0;
  std::set<std::string> in_use_;  // ids of VMs taken and not yet returned
  std::uint64_t taken_ = 0;
  std::uint64_t replaced_ = 0;
  std::uint64_t failed_ = 0;
  std::string last_error_;
  // After a failed clone no filler starts another before this.
  std::chrono::steady_clock::time_point retry_at_;
  std::chrono::seconds retry_delay_;

  bool stopping_ = false;
  int loops_running_ = 0;
  Notifier loop_ended_;  // given as each loop ends; Stop() waits on it
  // One per filler: re-arming a timer cancels every wait on it, so fillers
  // sharing one would wake each other forever.
  std::vector<std::unique_ptr<boost::asio::steady_timer>> fill_wakes_;
  boost::asio::steady_timer health_wake_;
};

}  // namespace agentvm
