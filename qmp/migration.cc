#include "qmp/migration.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/deadline.h"

namespace agentvm {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// A paused VM has no dirty-page convergence to wait for, so the only limits
// that matter are QEMU's defaults: 128 MiB/s of bandwidth and a 300 ms
// downtime target (measured: 0.73 s to save the tiny image's 256 MiB guest,
// 0.15 s without them). Lifted to "as fast as the file takes it" and "switch
// over after the first pass".
constexpr std::int64_t kMaxBandwidthBytesPerSecond = std::int64_t{1} << 40;
constexpr std::int64_t kDowntimeLimitMs = 2'000'000;  // QEMU's maximum

bool IsFinalStatus(const qmp::QmpEvent& event) {
  const std::string status = event.data.value("status", "");
  return status == "completed" || status == "failed" || status == "cancelled";
}

Error Wrapped(const qmp::QmpError& error, std::string_view context) {
  return error.ToError().Wrap(context);
}

std::string TimeoutText(milliseconds timeout) { return "did not finish within " + std::to_string(timeout.count()) + " ms"; }

// QEMU's reason for a failed migration; empty when it cannot say (it exited).
boost::asio::awaitable<std::string> MigrationErrorDesc(qmp::QmpClient& qmp, milliseconds timeout) {
  auto info = co_await qmp.Execute("query-migrate", nullptr, timeout);
  if (!info || !info->is_object()) co_return std::string();
  co_return info->value("error-desc", std::string());
}

// MIGRATION events are off by default; both ends need them to report
// progress. x-ignore-shared is set (or cleared) explicitly on both ends.
boost::asio::awaitable<Result<void>> SetCapabilities(qmp::QmpClient& qmp, RamInStream ram, milliseconds timeout) {
  json events = {{"capability", "events"}, {"state", true}};
  json ignore_shared = {{"capability", "x-ignore-shared"}, {"state", ram == RamInStream::kIgnoreShared}};
  json arguments = {{"capabilities", json::array({events, ignore_shared})}};
  auto set = co_await qmp.Execute("migrate-set-capabilities", arguments, timeout);
  if (!set) co_return Fail(Wrapped(set.error(), "set migration capabilities"));
  co_return Result<void>{};
}

// Best effort: a fd registered but never consumed would stay open in QEMU.
boost::asio::awaitable<void> CloseMigrationFd(qmp::QmpClient& qmp, milliseconds timeout) {
  json arguments = {{"fdname", kMigrationFdName}};
  co_await qmp.Execute("closefd", arguments, timeout);
}

}  // namespace

boost::asio::awaitable<Result<void>> SaveState(qmp::QmpClient& qmp, int fd, RamInStream ram, milliseconds timeout) {
  const Deadline deadline(timeout);
  constexpr const char kContext[] = "save state";

  auto stopped = co_await qmp.Execute("stop", nullptr, deadline.Remaining());
  if (!stopped) co_return Fail(Wrapped(stopped.error(), kContext));
  if (auto events = co_await SetCapabilities(qmp, ram, deadline.Remaining()); !events) {
    co_return Fail(events.error().Wrap(kContext));
  }
  json parameters = {{"max-bandwidth", kMaxBandwidthBytesPerSecond}, {"downtime-limit", kDowntimeLimitMs}};
  auto tuned = co_await qmp.Execute("migrate-set-parameters", parameters, deadline.Remaining());
  if (!tuned) co_return Fail(Wrapped(tuned.error(), kContext));

  json getfd = {{"fdname", kMigrationFdName}};
  auto passed = co_await qmp.ExecuteWithFd("getfd", getfd, fd, deadline.Remaining());
  if (!passed) co_return Fail(Wrapped(passed.error(), kContext));

  // Registered before `migrate`: a fast save may complete before its reply.
  qmp::EventWaiter finished = qmp.ExpectEvent("MIGRATION", IsFinalStatus);
  json migrate = {{"uri", std::string("fd:") + kMigrationFdName}};
  auto started = co_await qmp.Execute("migrate", migrate, deadline.Remaining());
  if (!started) {
    co_await CloseMigrationFd(qmp, deadline.Remaining());
    co_return Fail(Wrapped(started.error(), kContext));
  }

  auto event = co_await finished.Wait(deadline.Remaining());
  if (!event) {
    if (event.error().kind == qmp::QmpError::Kind::kTimeout) {
      // Cancelled so the file is not written behind the caller's back.
      co_await qmp.Execute("migrate_cancel", nullptr, milliseconds(2000));
      co_return Fail(ErrorCode::kTimeout, std::string(kContext) + ": migration " + TimeoutText(deadline.timeout()));
    }
    co_return Fail(Wrapped(event.error(), std::string(kContext) + ": waiting for the migration"));
  }
  const std::string status = event->data.value("status", "");
  if (status == "completed") co_return Result<void>{};
  std::string why = co_await MigrationErrorDesc(qmp, deadline.Remaining());
  if (why.empty()) why = "no reason given";
  co_return Fail(ErrorCode::kInternal, std::string(kContext) + ": migration " + status + ": " + why);
}

boost::asio::awaitable<Result<void>> LoadState(qmp::QmpClient& qmp, int fd, RamInStream ram, milliseconds timeout) {
  const Deadline deadline(timeout);
  constexpr const char kContext[] = "load state";

  if (auto events = co_await SetCapabilities(qmp, ram, deadline.Remaining()); !events) {
    co_return Fail(events.error().Wrap(kContext));
  }
  json getfd = {{"fdname", kMigrationFdName}};
  auto passed = co_await qmp.ExecuteWithFd("getfd", getfd, fd, deadline.Remaining());
  if (!passed) co_return Fail(Wrapped(passed.error(), kContext));

  qmp::EventWaiter finished = qmp.ExpectEvent("MIGRATION", IsFinalStatus);
  json incoming = {{"uri", std::string("fd:") + kMigrationFdName}};
  auto started = co_await qmp.Execute("migrate-incoming", incoming, deadline.Remaining());
  if (!started) {
    if (started.error().kind != qmp::QmpError::Kind::kDisconnected) {
      co_await CloseMigrationFd(qmp, deadline.Remaining());
    }
    co_return Fail(Wrapped(started.error(), kContext));
  }

  // QEMU 7.2 exits right after a failed incoming migration, so a disconnect
  // here is the usual shape of "corrupt or mismatched state".
  auto event = co_await finished.Wait(deadline.Remaining());
  if (!event) {
    switch (event.error().kind) {
      case qmp::QmpError::Kind::kTimeout:
        co_return Fail(ErrorCode::kTimeout, std::string(kContext) + ": incoming migration " +
                                                TimeoutText(deadline.timeout()));
      case qmp::QmpError::Kind::kDisconnected:
        co_return Fail(ErrorCode::kUnavailable,
                       std::string(kContext) +
                           ": QEMU exited during the incoming migration (corrupt or mismatched state?)");
      default:
        co_return Fail(Wrapped(event.error(), std::string(kContext) + ": waiting for the migration"));
    }
  }
  const std::string status = event->data.value("status", "");
  if (status == "completed") co_return Result<void>{};
  // Short: QEMU is about to exit, the reply may never come.
  std::string why = co_await MigrationErrorDesc(qmp, std::min(deadline.Remaining(), milliseconds(1000)));
  if (why.empty()) why = "QEMU exits after a failed load; its log says why";
  co_return Fail(ErrorCode::kUnavailable, std::string(kContext) + ": incoming migration " + status + ": " + why);
}

}  // namespace agentvm
