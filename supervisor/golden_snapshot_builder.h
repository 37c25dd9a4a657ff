// GoldenSnapshotBuilder: a profile's golden snapshot on demand. Finds it in the
// store (golden_snapshot_store.h) when it matches what the daemon would run now;
// otherwise builds it: boots a VM of the profile, waits for its agent, saves
// its state, freezes the disk it ran on, commits. Concurrent requests for one
// profile share one build.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "common/notifier.h"
#include "common/pending.h"
#include "supervisor/golden_snapshot_store.h"
#include "supervisor/vm.h"

namespace agentvm {

class GoldenSnapshotBuilder {
 public:
  // Boots a VM of the profile `key` names (unclaimed), running when it returns.
  using BootVm = std::function<boost::asio::awaitable<Result<std::shared_ptr<Vm>>>(const GoldenKey&)>;
  // Removes a VM BootVm made, with its lease and record.
  using RemoveVm = std::function<boost::asio::awaitable<void>(std::shared_ptr<Vm>)>;

  // `memory_templates`: snapshots keep guest RAM as a copy-on-write
  // template (memory_template.h) and BootVm's VMs must be made with
  // ram_becomes_template; else the state holds a full copy of RAM.
  GoldenSnapshotBuilder(boost::asio::any_io_executor executor, std::filesystem::path root, std::string qemu_version,
                        bool memory_templates, BootVm boot, RemoveVm remove);

  bool memory_templates() const { return memory_templates_; }

  // What a crash mid-build left; call once at startup.
  Result<void> RemoveLeftovers();

  // The profile's snapshot if there is one that `clone` (a VM of the profile,
  // not booted yet) can restore. One that is stale or damaged is removed and
  // `rejected` (if given) says why.
  Result<std::optional<GoldenSnapshot>> Find(const GoldenKey& key, const Vm& clone, std::string* rejected = nullptr);

  // Find(), or else build one and wait for it.
  boost::asio::awaitable<Result<GoldenSnapshot>> Get(const GoldenKey& key, const Vm& clone);

  // Starts building the profile's snapshot in the background unless a build
  // is under way or the last one failed less than kRetryAfterFailure ago (an
  // image that cannot boot must not cost a boot per create).
  void BuildSoon(const GoldenKey& key);
  static constexpr std::chrono::seconds kRetryAfterFailure{60};

  // Completes when no build is under way (at shutdown, after every QEMU was
  // killed, so builds end quickly).
  boost::asio::awaitable<void> WaitIdle();

  // The snapshot passed its checks but QEMU could not load it: removed, so
  // the next Get() builds a new one.
  void Discard(const GoldenKey& key);

  // Whether the profile has a committed snapshot (not checked in depth).
  bool Exists(const GoldenKey& key) const;

 private:
  Result<GoldenMeta> ExpectedMeta(const Vm& vm) const;
  // One build per key at a time; later callers wait for the first's result.
  boost::asio::awaitable<Result<GoldenSnapshot>> Build(const GoldenKey& key);
  boost::asio::awaitable<Result<GoldenSnapshot>> BootAndSave(const GoldenKey& key);
  boost::asio::awaitable<Result<GoldenSnapshot>> SaveAndFreeze(const GoldenKey& key, Vm& vm);

  using Waiter = std::shared_ptr<Pending<Result<GoldenSnapshot>>>;

  boost::asio::any_io_executor executor_;
  GoldenSnapshotStore store_;
  std::string qemu_version_;
  bool memory_templates_;
  BootVm boot_;
  RemoveVm remove_;
  // Builds under way, by GoldenKey::DirName(), with who waits for each.
  std::map<std::string, std::vector<Waiter>> building_;
  // When each key's latest build failed; cleared by a success.
  std::map<std::string, std::chrono::steady_clock::time_point> failed_at_;
  Notifier build_ended_;  // given as each build ends; WaitIdle() waits on it
};

}  // namespace agentvm
