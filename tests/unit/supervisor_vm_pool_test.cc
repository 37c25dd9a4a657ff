// VmPool against a fake Supervisor: the hooks make "recovered" Vm objects (no
// QEMU), so what is checked is what a user of the pool relies on: how many
// VMs it keeps and makes, what Take() hands out, what it removes and when,
// and what Info() says about it.
#include "supervisor/vm_pool.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "qmp/testing/coroutine_test.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using boost::asio::use_awaitable;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kPoolName[] = "tiny-1c-256m-isolated";

bool Contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

awaitable<void> Pause(milliseconds duration) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  timer.expires_after(duration);
  co_await timer.async_wait(use_awaitable);
}

// Polls `done` until it holds or `limit` passes. Takes a named callable:
// g++ 12 mishandles class temporaries built inside a co_await expression.
template <class F>
awaitable<bool> WaitUntil(F& done, milliseconds limit) {
  const Clock::time_point deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= deadline) co_return false;
    co_await Pause(5ms);
  }
  co_return true;
}

#define CO_WAIT_UNTIL(condition, limit)                                        \
  do {                                                                         \
    auto done_ = [&] { return static_cast<bool>(condition); };                 \
    if (!co_await WaitUntil(done_, limit)) {                                   \
      ADD_FAILURE() << "timed out after " #limit " waiting for " #condition;   \
      co_return;                                                               \
    }                                                                          \
  } while (0)

// The Supervisor's side of the hooks: makes VMs named pool-vm-<n> (n counts
// make calls from 1) and records what the pool asked of it.
class FakeSupervisor {
 public:
  explicit FakeSupervisor(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  VmPool::Hooks Hooks() {
    return VmPool::Hooks{
        .make = [this] { return Make(); },
        .remove = [this](std::shared_ptr<Vm> vm) { return Remove(std::move(vm)); },
        .check = [this](Vm& vm) { return Check(vm); },
        .golden_ready = [this] { return golden_ready; },
    };
  }

  // Knobs, set before the pool starts (or between steps).
  std::set<int> failing_makes;       // these make calls fail
  std::set<int> dead_makes;          // these make calls give a VM in state failed
  std::set<std::string> unhealthy;   // ids whose health check fails
  milliseconds make_delay{0};        // how long a clone takes to come up
  milliseconds check_delay{0};       // how long a health check takes
  bool golden_ready = true;
  const VmPool* pool = nullptr;      // observed at each make, if set

  // What happened.
  int make_calls = 0;
  int makes_in_flight = 0;
  int max_makes_in_flight = 0;
  int max_total_seen = 0;  // ready + starting + in_use while a clone is made
  int checks_in_flight = 0;
  std::vector<std::string> made;
  std::vector<std::string> removed;
  std::vector<std::string> checked;

 private:
  awaitable<Result<std::shared_ptr<Vm>>> Make() {
    const int n = ++make_calls;
    ++makes_in_flight;
    max_makes_in_flight = std::max(max_makes_in_flight, makes_in_flight);
    if (pool) {
      const PoolInfo info = pool->Info();
      max_total_seen = std::max(max_total_seen, info.ready + info.starting + info.in_use);
    }
    if (make_delay > 0ms) co_await Pause(make_delay);
    --makes_in_flight;
    if (failing_makes.contains(n)) {
      std::string message = "fake restore " + std::to_string(n) + " failed";
      co_return Fail(ErrorCode::kInternal, std::move(message));
    }
    std::shared_ptr<Vm> vm = NewVm("pool-vm-" + std::to_string(n), dead_makes.contains(n));
    made.push_back(vm->id());
    co_return vm;
  }

  awaitable<void> Remove(std::shared_ptr<Vm> vm) {
    removed.push_back(vm->id());
    co_return;
  }

  awaitable<Result<void>> Check(Vm& vm) {
    const std::string id = vm.id();
    checked.push_back(id);
    ++checks_in_flight;
    if (check_delay > 0ms) co_await Pause(check_delay);
    --checks_in_flight;
    if (unhealthy.contains(id)) {
      std::string message = "agent of " + id + " did not answer";
      co_return Fail(ErrorCode::kUnavailable, std::move(message));
    }
    co_return Result<void>{};
  }

  std::shared_ptr<Vm> NewVm(const std::string& id, bool dead) {
    VmContext context{.executor = executor_};
    VmSpec spec{.id = id, .image = Image{.name = "tiny"}, .pool = kPoolName, .unclaimed = true};
    const VmState state = dead ? VmState::kFailed : VmState::kRunning;
    std::string reason = dead ? "qemu killed by signal 9" : "";
    return std::make_shared<Vm>(std::move(context), std::move(spec), state, std::move(reason),
                                std::int64_t{std::time(nullptr)});
  }

  boost::asio::any_io_executor executor_;
};

// One filler unless a test says otherwise: the default goes by the host's cores.
PoolConfig Config(int min_ready, int max_total, std::chrono::seconds ttl = std::chrono::hours(1),
                  int fill_parallelism = 1) {
  return PoolConfig{.image = "tiny", .cpus = 1, .memory_mib = 256, .network = "isolated",
                    .min_ready = min_ready, .max_total = max_total, .ttl = ttl,
                    .fill_parallelism = fill_parallelism};
}

class VmPoolTest : public ::testing::Test {
 protected:
  void MakePool(PoolConfig config, std::chrono::seconds health_interval = std::chrono::hours(1)) {
    pool_ = std::make_unique<VmPool>(runner_.executor(), std::move(config), NetworkMode::kIsolated,
                                     health_interval, fake_.Hooks());
    fake_.pool = pool_.get();
  }

  // Runs `body` on the io_context, then stops the pool, within `limit`; then
  // checks the pool left no work behind (both loops ended, no timer armed).
  template <class F>
  void Run(F body, milliseconds limit = 5s) {
    runner_.Spawn([&]() -> awaitable<void> {
      co_await body();
      co_await StopPool();
    });
    ASSERT_TRUE(runner_.RunFor(limit)) << runner_.Describe();
    runner_.Poll();  // detached removals Take() started
    EXPECT_TRUE(runner_.io().stopped()) << "the stopped pool still has work pending";
  }

  awaitable<void> StopPool() { co_await pool_->Stop(); }

  VmPool& pool() { return *pool_; }
  PoolInfo info() const { return pool_->Info(); }

  qmp::testing::CoroutineRunner runner_;
  FakeSupervisor fake_{runner_.executor()};
  std::unique_ptr<VmPool> pool_;  // declared last: destroyed before what its hooks use
};

TEST_F(VmPoolTest, FillsToMinReadyAndNoFurther) {
  MakePool(Config(/*min_ready=*/2, /*max_total=*/4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    co_await Pause(50ms);  // time to overshoot, if it would
    const PoolInfo now = info();
    EXPECT_EQ(fake_.make_calls, 2);
    EXPECT_EQ(now.ready, 2);
    EXPECT_EQ(now.starting, 0);
    EXPECT_EQ(now.in_use, 0);
    EXPECT_EQ(now.taken, 0u);
    EXPECT_EQ(now.replaced, 0u);
    EXPECT_EQ(now.failed, 0u);
    EXPECT_EQ(now.name, kPoolName);
    EXPECT_EQ(now.image, "tiny");
    EXPECT_EQ(now.network, NetworkMode::kIsolated);
    EXPECT_EQ(now.min_ready, 2);
    EXPECT_EQ(now.max_total, 4);
    EXPECT_TRUE(now.golden_ready);
    EXPECT_TRUE(now.last_error.empty());
    EXPECT_TRUE(fake_.removed.empty());
  });
}

TEST_F(VmPoolTest, GoldenReadyComesFromTheHook) {
  fake_.golden_ready = false;
  MakePool(Config(1, 2));
  EXPECT_FALSE(info().golden_ready);
  fake_.golden_ready = true;
  EXPECT_TRUE(info().golden_ready);
}

TEST_F(VmPoolTest, MakesOneCloneAtATime) {
  fake_.make_delay = 20ms;
  MakePool(Config(3, 6));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().starting == 1, 1s);
    EXPECT_EQ(info().ready, 0);
    CO_WAIT_UNTIL(info().ready == 3, 2s);
    EXPECT_EQ(fake_.max_makes_in_flight, 1);
    EXPECT_EQ(fake_.make_calls, 3);
  });
}

TEST_F(VmPoolTest, FillsWithUpToFillParallelismClonesAtOnce) {
  fake_.make_delay = 50ms;
  MakePool(Config(4, 6, std::chrono::hours(1), /*fill_parallelism=*/2));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().starting == 2, 1s);
    EXPECT_EQ(info().fill_parallelism, 2);
    CO_WAIT_UNTIL(info().ready == 4, 2s);
    co_await Pause(100ms);  // time to overshoot, if it would
    EXPECT_EQ(fake_.max_makes_in_flight, 2);
    EXPECT_EQ(fake_.make_calls, 4);
    EXPECT_EQ(info().ready, 4);
  });
}

TEST_F(VmPoolTest, ParallelFillersNeverExceedMaxTotal) {
  fake_.make_delay = 30ms;
  MakePool(Config(3, 3, std::chrono::hours(1), /*fill_parallelism=*/8));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 3, 2s);
    co_await Pause(100ms);
    EXPECT_EQ(fake_.max_makes_in_flight, 3);
    EXPECT_LE(fake_.max_total_seen, 3);
    EXPECT_EQ(fake_.make_calls, 3);
  });
}

TEST_F(VmPoolTest, AFailedCloneHoldsOffEveryFiller) {
  fake_.make_delay = 20ms;
  fake_.failing_makes = {1};
  MakePool(Config(2, 4, std::chrono::hours(1), /*fill_parallelism=*/2));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().failed == 1, 1s);
    const Clock::time_point failed_at = Clock::now();
    CO_WAIT_UNTIL(info().ready == 1, 1s);  // the second filler's clone
    co_await Pause(300ms);
    EXPECT_EQ(fake_.make_calls, 2) << "a filler retried without the delay";
    CO_WAIT_UNTIL(info().ready == 2, 4s);
    EXPECT_GE(Clock::now() - failed_at, 1500ms);
    EXPECT_EQ(fake_.make_calls, 3);
  }, 8s);
}

TEST_F(VmPoolTest, TakeReturnsNullWhenNoneIsReady) {
  fake_.make_delay = 100ms;
  MakePool(Config(1, 2));
  EXPECT_EQ(pool().Take(), nullptr);  // not started
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().starting == 1, 1s);
    // A clone is on its way; Take() does not wait for it.
    const Clock::time_point before = Clock::now();
    EXPECT_EQ(pool().Take(), nullptr);
    EXPECT_LT(Clock::now() - before, 20ms);
    EXPECT_EQ(info().taken, 0u);
    EXPECT_EQ(info().in_use, 0);
    CO_WAIT_UNTIL(info().ready == 1, 2s);
  });
}

TEST_F(VmPoolTest, TakeClaimsAReadyVmAndThePoolRefills) {
  MakePool(Config(1, 4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    std::shared_ptr<Vm> vm = pool().Take();
    CO_ASSERT_TRUE(vm != nullptr);
    EXPECT_EQ(vm->id(), "pool-vm-1");
    EXPECT_FALSE(vm->unclaimed());
    EXPECT_EQ(vm->pool(), kPoolName);
    EXPECT_EQ(vm->Info().boot, "pool");
    EXPECT_EQ(info().taken, 1u);
    EXPECT_EQ(info().in_use, 1);

    CO_WAIT_UNTIL(info().ready == 1, 2s);
    std::shared_ptr<Vm> second = pool().Take();
    CO_ASSERT_TRUE(second != nullptr);
    EXPECT_EQ(second->id(), "pool-vm-2");
    EXPECT_EQ(info().taken, 2u);
    EXPECT_EQ(info().in_use, 2);
    EXPECT_TRUE(fake_.removed.empty()) << "a taken VM is the user's, not the pool's";
  });
}

TEST_F(VmPoolTest, NeverExceedsMaxTotalCountingTakenVms) {
  MakePool(Config(2, 3));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    std::shared_ptr<Vm> a = pool().Take();
    CO_ASSERT_TRUE(a != nullptr);
    CO_WAIT_UNTIL(info().ready == 2, 2s);  // 2 ready + 1 in use = max_total
    std::shared_ptr<Vm> b = pool().Take();
    CO_ASSERT_TRUE(b != nullptr);
    co_await Pause(50ms);
    EXPECT_EQ(fake_.make_calls, 3);
    EXPECT_EQ(info().ready, 1);
    EXPECT_EQ(info().in_use, 2);

    std::shared_ptr<Vm> c = pool().Take();
    CO_ASSERT_TRUE(c != nullptr);
    EXPECT_EQ(pool().Take(), nullptr);
    co_await Pause(50ms);
    EXPECT_EQ(fake_.make_calls, 3) << "3 in use is max_total: no room to make one";
    EXPECT_EQ(info().ready, 0);
    EXPECT_EQ(info().in_use, 3);
    EXPECT_EQ(info().taken, 3u);
    EXPECT_LE(fake_.max_total_seen, 3);
  });
}

TEST_F(VmPoolTest, ReturnedFreesRoomToRefill) {
  MakePool(Config(1, 1));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    std::shared_ptr<Vm> vm = pool().Take();
    CO_ASSERT_TRUE(vm != nullptr);
    co_await Pause(50ms);
    EXPECT_EQ(fake_.make_calls, 1) << "max_total 1 is taken";

    pool().Returned(vm->id());
    EXPECT_EQ(info().in_use, 0);
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    EXPECT_EQ(fake_.make_calls, 2);
    EXPECT_LE(fake_.max_total_seen, 1);
  });
}

TEST_F(VmPoolTest, ReturnedOfAnUnknownIdChangesNothing) {
  MakePool(Config(1, 1));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    std::shared_ptr<Vm> vm = pool().Take();
    CO_ASSERT_TRUE(vm != nullptr);

    pool().Returned("no-such-vm");
    co_await Pause(50ms);
    EXPECT_EQ(info().in_use, 1);
    EXPECT_EQ(info().ready, 0);
    EXPECT_EQ(fake_.make_calls, 1);

    // Nor does a second return of the same VM.
    pool().Returned(vm->id());
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    pool().Returned(vm->id());
    co_await Pause(50ms);
    EXPECT_EQ(info().in_use, 0);
    EXPECT_EQ(info().ready, 1);
    EXPECT_EQ(fake_.make_calls, 2);
  });
}

TEST_F(VmPoolTest, VmFailingItsHealthCheckIsRemovedAndReplaced) {
  fake_.unhealthy = {"pool-vm-1"};
  MakePool(Config(2, 4), /*health_interval=*/1s);
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    CO_WAIT_UNTIL(Contains(fake_.removed, "pool-vm-1"), 3s);
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    EXPECT_TRUE(Contains(fake_.checked, "pool-vm-1"));
    EXPECT_TRUE(Contains(fake_.checked, "pool-vm-2"));
    EXPECT_EQ(fake_.removed, std::vector<std::string>{"pool-vm-1"}) << "the healthy VM stays";
    EXPECT_EQ(info().replaced, 1u);
    EXPECT_EQ(info().failed, 0u);
    EXPECT_EQ(fake_.make_calls, 3);
    std::shared_ptr<Vm> first = pool().Take();
    std::shared_ptr<Vm> second = pool().Take();
    CO_ASSERT_TRUE(first && second);
    EXPECT_EQ(first->id(), "pool-vm-2");
    EXPECT_EQ(second->id(), "pool-vm-3");
  });
}

TEST_F(VmPoolTest, VmTakenDuringItsHealthCheckIsNotRemoved) {
  fake_.unhealthy = {"pool-vm-1"};
  fake_.check_delay = 200ms;
  MakePool(Config(1, 4), /*health_interval=*/1s);
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(Contains(fake_.checked, "pool-vm-1"), 3s);
    std::shared_ptr<Vm> vm = pool().Take();  // while the check is in flight
    CO_ASSERT_TRUE(vm != nullptr);
    EXPECT_EQ(vm->id(), "pool-vm-1");
    co_await Pause(300ms);  // the check has failed by now
    EXPECT_FALSE(Contains(fake_.removed, "pool-vm-1")) << "a taken VM is the user's";
    EXPECT_EQ(info().replaced, 0u);
    EXPECT_EQ(info().in_use, 1);
  }, 6s);
}

TEST_F(VmPoolTest, VmOlderThanTheTtlIsReplacedWithoutACheck) {
  // pool-vm-1 is made before the health loop arms its first 1 s wait, so it
  // is older than 1 s at the first check.
  MakePool(Config(1, 4, /*ttl=*/1s), /*health_interval=*/1s);
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(Contains(fake_.removed, "pool-vm-1"), 3s);
    EXPECT_FALSE(Contains(fake_.checked, "pool-vm-1"));
    EXPECT_GE(info().replaced, 1u);
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    EXPECT_TRUE(Contains(fake_.made, "pool-vm-2"));
  });
}

TEST_F(VmPoolTest, FailedCloneIsCountedAndRetriedAfterADelay) {
  fake_.failing_makes = {1};
  MakePool(Config(1, 4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().failed == 1, 1s);
    const Clock::time_point failed_at = Clock::now();
    EXPECT_EQ(info().last_error, "fake restore 1 failed");
    EXPECT_EQ(info().ready, 0);
    EXPECT_EQ(info().starting, 0);

    co_await Pause(300ms);
    EXPECT_EQ(fake_.make_calls, 1) << "retried without a delay";

    CO_WAIT_UNTIL(info().ready == 1, 4s);
    EXPECT_GE(Clock::now() - failed_at, 1500ms);
    EXPECT_EQ(fake_.make_calls, 2);
    EXPECT_EQ(info().failed, 1u);
  }, 8s);
}

TEST_F(VmPoolTest, TakeSkipsAndRemovesAVmThatIsNoLongerRunning) {
  fake_.dead_makes = {1};
  MakePool(Config(2, 4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    std::shared_ptr<Vm> vm = pool().Take();
    CO_ASSERT_TRUE(vm != nullptr);
    EXPECT_EQ(vm->id(), "pool-vm-2");
    EXPECT_EQ(vm->state(), VmState::kRunning);
    EXPECT_EQ(info().taken, 1u);
    EXPECT_EQ(info().replaced, 1u);
    CO_WAIT_UNTIL(Contains(fake_.removed, "pool-vm-1"), 1s);
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    EXPECT_EQ(fake_.removed, std::vector<std::string>{"pool-vm-1"});
  });
}

// A Take() that finds only dead VMs still wakes the filler: otherwise the
// pool would stay empty until a taken VM came back.
TEST_F(VmPoolTest, TakeThatFindsOnlyDeadVmsStillRefills) {
  fake_.dead_makes = {1};
  MakePool(Config(1, 4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    EXPECT_EQ(pool().Take(), nullptr);
    CO_WAIT_UNTIL(Contains(fake_.removed, "pool-vm-1"), 1s);
    CO_WAIT_UNTIL(info().ready == 1, 1s);
    std::shared_ptr<Vm> vm = pool().Take();
    CO_ASSERT_TRUE(vm != nullptr);
    EXPECT_EQ(vm->id(), "pool-vm-2");
  });
}

TEST_F(VmPoolTest, StopRemovesTheReadyVmsAndEndsBothLoops) {
  MakePool(Config(2, 4), /*health_interval=*/1s);
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    std::shared_ptr<Vm> taken = pool().Take();
    CO_ASSERT_TRUE(taken != nullptr);
    CO_WAIT_UNTIL(info().ready == 2, 2s);

    co_await StopPool();
    std::vector<std::string> removed = fake_.removed;
    std::sort(removed.begin(), removed.end());
    EXPECT_EQ(removed, (std::vector<std::string>{"pool-vm-2", "pool-vm-3"})) << "the taken VM is not the pool's";
    EXPECT_EQ(info().ready, 0);
    EXPECT_EQ(pool().Take(), nullptr);

    // Stopped: nothing refills it, whatever frees room.
    pool().Returned(taken->id());
    co_await Pause(50ms);
    EXPECT_EQ(fake_.make_calls, 3);
  });
  // Run() checked that no timer of either loop is still armed.
}

// Stop() right after Start(), with both loops waiting: it must yield until
// they end. A Stop() that spins never returns to the runner's deadline, so
// the alarm ends the process instead of hanging the run.
TEST_F(VmPoolTest, StopWaitsForTheLoopsAndRemovesTheReadyVms) {
  alarm(10);
  MakePool(Config(2, 4), /*health_interval=*/1s);
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 2, 2s);
    const Clock::time_point before = Clock::now();
    co_await pool().Stop();
    EXPECT_LT(Clock::now() - before, 500ms) << "Stop() waited for the health interval";
    std::vector<std::string> removed = fake_.removed;
    std::sort(removed.begin(), removed.end());
    EXPECT_EQ(removed, (std::vector<std::string>{"pool-vm-1", "pool-vm-2"}));
    EXPECT_EQ(info().ready, 0);
  });
  alarm(0);
}

TEST_F(VmPoolTest, NothingIsMadeAfterRequestStop) {
  MakePool(Config(1, 4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    std::shared_ptr<Vm> taken = pool().Take();
    CO_ASSERT_TRUE(taken != nullptr);
    CO_WAIT_UNTIL(info().ready == 1, 2s);
    pool().RequestStop();
    pool().Returned(taken->id());  // room to make one, and a wake-up
    co_await Pause(50ms);
    EXPECT_EQ(fake_.make_calls, 2);
  });
  EXPECT_EQ(fake_.make_calls, 2);
}

TEST_F(VmPoolTest, CloneInFlightAtRequestStopIsRemovedNotKept) {
  fake_.make_delay = 100ms;
  MakePool(Config(2, 4));
  Run([&]() -> awaitable<void> {
    pool().Start();
    CO_WAIT_UNTIL(info().starting == 1, 1s);
    pool().RequestStop();
    CO_WAIT_UNTIL(fake_.makes_in_flight == 0, 1s);
    co_await Pause(10ms);
    EXPECT_EQ(fake_.make_calls, 1);
    EXPECT_EQ(fake_.removed, std::vector<std::string>{"pool-vm-1"});
    EXPECT_EQ(info().ready, 0);
    EXPECT_EQ(info().starting, 0);
    EXPECT_EQ(info().failed, 0u);
  });
}

CreateVmRequest Request(const std::string& image, int cpus, int memory_mib) {
  return CreateVmRequest{.image = image, .cpus = cpus, .memory_mib = memory_mib};
}

TEST_F(VmPoolTest, MatchesTheSameProfileOnly) {
  MakePool(Config(1, 2));
  EXPECT_TRUE(pool().Matches(Request("tiny", 1, 256), NetworkMode::kIsolated));
  EXPECT_FALSE(pool().Matches(Request("other", 1, 256), NetworkMode::kIsolated));
  EXPECT_FALSE(pool().Matches(Request("tiny", 2, 256), NetworkMode::kIsolated));
  EXPECT_FALSE(pool().Matches(Request("tiny", 1, 512), NetworkMode::kIsolated));
  EXPECT_FALSE(pool().Matches(Request("tiny", 1, 256), NetworkMode::kNatFiltered));
  EXPECT_FALSE(pool().Matches(Request("tiny", 1, 256), NetworkMode::kBridge));
}

TEST_F(VmPoolTest, RequestWithPerVmNetworkRulesIsNeverServedFromThePool) {
  MakePool(Config(1, 2));
  CreateVmRequest ports = Request("tiny", 1, 256);
  ports.network.allow_tcp_ports = {8080};
  EXPECT_FALSE(pool().Matches(ports, NetworkMode::kIsolated));

  CreateVmRequest cidrs = Request("tiny", 1, 256);
  cidrs.network.allow_cidrs = {"203.0.113.0/24"};
  EXPECT_FALSE(pool().Matches(cidrs, NetworkMode::kIsolated));

  CreateVmRequest bridge = Request("tiny", 1, 256);
  bridge.network.bridge = "br0";
  EXPECT_FALSE(pool().Matches(bridge, NetworkMode::kIsolated));

  CreateVmRequest bandwidth = Request("tiny", 1, 256);
  bandwidth.network.bandwidth_bytes_per_sec = 1'000'000;
  EXPECT_FALSE(pool().Matches(bandwidth, NetworkMode::kIsolated));

  // The mode alone is no rule: it is compared as resolved.
  CreateVmRequest mode = Request("tiny", 1, 256);
  mode.network.mode = NetworkMode::kIsolated;
  EXPECT_TRUE(pool().Matches(mode, NetworkMode::kIsolated));
}

TEST(VmPoolNameTest, NameOfSpellsImageCpusMemoryNetwork) {
  EXPECT_EQ(VmPool::NameOf("tiny", 1, 256, NetworkMode::kIsolated), "tiny-1c-256m-isolated");
  EXPECT_EQ(VmPool::NameOf("debian", 4, 2048, NetworkMode::kNatFiltered), "debian-4c-2048m-nat-filtered");
}

TEST_F(VmPoolTest, NameIsTheProfileName) {
  MakePool(Config(1, 2));
  EXPECT_EQ(pool().name(), kPoolName);
  EXPECT_EQ(info().name, kPoolName);
}

}  // namespace
}  // namespace agentvm
