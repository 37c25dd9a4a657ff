#include "supervisor/golden_snapshot_builder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/logging.h"
#include "common/unique_fd.h"
#include "common/spawn.h"
#include "supervisor/memory_template.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> Log() { return Logger("golden"); }

// Waiters give up well after a build that is merely slow (a TCG cold boot
// under load takes 10-20 s; the boot itself is bounded by agent_timeout).
constexpr std::chrono::minutes kBuildWaitLimit{10};

}  // namespace

GoldenSnapshotBuilder::GoldenSnapshotBuilder(boost::asio::any_io_executor executor, fs::path root,
                                             std::string qemu_version, bool memory_templates, BootVm boot,
                                             RemoveVm remove)
    : executor_(std::move(executor)),
      store_(std::move(root)),
      qemu_version_(std::move(qemu_version)),
      memory_templates_(memory_templates),
      boot_(std::move(boot)),
      remove_(std::move(remove)),
      build_ended_(executor_) {}

Result<void> GoldenSnapshotBuilder::RemoveLeftovers() {
  auto removed = store_.RemoveLeftovers();
  if (!removed) return Fail(removed.error());
  if (*removed > 0) Log()->info("removed {} unfinished golden snapshot(s)", *removed);
  return {};
}

Result<GoldenMeta> GoldenSnapshotBuilder::ExpectedMeta(const Vm& vm) const {
  auto identity = ImageIdentity(vm.image());
  if (!identity) return Fail(identity.error());
  // What the golden VM runs (`vm` may be it, or a clone not launched yet):
  // with templates its RAM is a template's source.
  QemuLaunchSpec spec = vm.LaunchSpecFor(nullptr);
  if (memory_templates_) spec.memory = GuestMemory::kTemplateSource;
  return GoldenMeta{
      .qemu_version = qemu_version_,
      .command_line_hash = CommandLineHash(spec),
      .image_identity = *identity,
  };
}

bool GoldenSnapshotBuilder::Exists(const GoldenKey& key) const {
  std::error_code ec;
  return fs::exists(store_.root() / key.DirName() / "meta.json", ec);
}

void GoldenSnapshotBuilder::Discard(const GoldenKey& key) {
  if (auto removed = store_.Remove(key); !removed) {
    Log()->error("{}: {}", key.DirName(), removed.error().message);
  } else {
    Log()->warn("{}: golden snapshot discarded: QEMU could not load it; the next restore rebuilds it",
                key.DirName());
  }
}

Result<std::optional<GoldenSnapshot>> GoldenSnapshotBuilder::Find(const GoldenKey& key, const Vm& clone,
                                                            std::string* rejected) {
  auto expected = ExpectedMeta(clone);
  if (!expected) return Fail(expected.error());
  return store_.Find(key, *expected, rejected);
}

boost::asio::awaitable<Result<GoldenSnapshot>> GoldenSnapshotBuilder::Get(const GoldenKey& key, const Vm& clone) {
  auto found = Find(key, clone);
  if (!found) co_return Fail(found.error());
  if (*found) co_return std::move(**found);
  co_return co_await Build(key);
}

void GoldenSnapshotBuilder::BuildSoon(const GoldenKey& key) {
  const std::string name = key.DirName();
  if (building_.contains(name)) return;
  if (auto failed = failed_at_.find(name);
      failed != failed_at_.end() && std::chrono::steady_clock::now() - failed->second < kRetryAfterFailure) {
    return;
  }
  SpawnDetached(
      executor_, [this, key]() -> boost::asio::awaitable<void> { co_await Build(key); }, name + ": golden build",
      Log());
}

boost::asio::awaitable<void> GoldenSnapshotBuilder::WaitIdle() {
  while (!building_.empty()) co_await build_ended_.Wait();
}

boost::asio::awaitable<Result<GoldenSnapshot>> GoldenSnapshotBuilder::Build(const GoldenKey& key) {
  const std::string name = key.DirName();
  if (auto it = building_.find(name); it != building_.end()) {
    auto waiter = std::make_shared<Pending<Result<GoldenSnapshot>>>(executor_);
    it->second.push_back(waiter);
    auto built = co_await waiter->Wait(kBuildWaitLimit);
    if (!built) co_return Fail(ErrorCode::kTimeout, "golden snapshot " + name + " still building");
    co_return std::move(*built);
  }
  building_[name];
  Result<GoldenSnapshot> built = co_await BootAndSave(key);
  if (built) {
    failed_at_.erase(name);
  } else {
    failed_at_[name] = std::chrono::steady_clock::now();
  }
  std::vector<Waiter> waiters = std::move(building_[name]);
  building_.erase(name);
  build_ended_.Notify();
  for (const Waiter& waiter : waiters) waiter->Set(built);
  co_return built;
}

boost::asio::awaitable<Result<GoldenSnapshot>> GoldenSnapshotBuilder::BootAndSave(const GoldenKey& key) {
  const auto start = std::chrono::steady_clock::now();
  Log()->info("{}: building golden snapshot", key.DirName());
  auto vm = co_await boot_(key);
  if (!vm) co_return Fail(vm.error().Wrap("golden snapshot " + key.DirName()));
  Result<GoldenSnapshot> saved = co_await SaveAndFreeze(key, **vm);
  co_await remove_(*vm);
  if (!saved) co_return Fail(saved.error().Wrap("golden snapshot " + key.DirName()));
  Log()->info("{}: golden snapshot ready in {} ms ({} bytes of state)", key.DirName(),
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count(),
              saved->meta.state_size);
  co_return saved;
}

boost::asio::awaitable<Result<GoldenSnapshot>> GoldenSnapshotBuilder::SaveAndFreeze(const GoldenKey& key, Vm& vm) {
  auto expected = ExpectedMeta(vm);
  if (!expected) co_return Fail(expected.error());
  auto writer = store_.Begin(key);
  if (!writer) co_return Fail(writer.error());
  UniqueFd fd(::open(writer->state_file().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) co_return Fail(ErrorCode::kInternal, "create " + writer->state_file().string() + ": " + std::strerror(errno));
  Result<void> saved = co_await vm.SaveStateAndEnd(fd.get());
  fd.reset();
  if (!saved) co_return Fail(saved.error());
  // QEMU has exited: the disk it ran on is complete and nobody writes it,
  // nor its RAM.
  std::error_code ec;
  fs::rename(vm.paths().overlay(), writer->disk(), ec);
  if (ec) co_return Fail(ErrorCode::kInternal, "freeze " + vm.paths().overlay().string() + ": " + ec.message());
  if (memory_templates_) {
    UniqueFd ram = vm.TakeGuestRam();
    if (!ram) co_return Fail(ErrorCode::kInternal, "golden VM " + vm.id() + " has no RAM memfd");
    if (auto written = writer->WriteMemory(ram.get()); !written) {
      co_return Fail(written.error().Wrap("save guest RAM"));
    }
  }
  auto committed = writer->Commit(*expected);
  if (!committed) co_return Fail(committed.error());
  // Found anew so that the snapshot returned has its memory template loaded.
  auto found = store_.Find(key, *expected);
  if (!found) co_return Fail(found.error());
  if (!*found) co_return Fail(ErrorCode::kInternal, "golden snapshot " + key.DirName() + " vanished after its commit");
  co_return std::move(**found);
}

}  // namespace agentvm
