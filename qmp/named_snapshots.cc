#include "qmp/named_snapshots.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/deadline.h"

namespace agentvm {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Kind = qmp::QmpError::Kind;

// Cleanup after a timeout gets its own small budget: the caller's is spent.
constexpr milliseconds kCleanupTimeout{2000};

Error Wrapped(const qmp::QmpError& error, std::string_view context) { return error.ToError().Wrap(context); }

// Job ids live in one namespace per QEMU and a concluded job keeps its id
// until dismissed, so each job gets a fresh one. Atomic: several daemons'
// io_contexts may share this process in tests.
std::string NextJobId(std::string_view verb) {
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("agentvm-snapshot-{}-{}", verb, ++counter);
}

qmp::EventFilter ConcludedFilter(std::string id) {
  return [id = std::move(id)](const qmp::QmpEvent& event) {
    return event.data.value("id", "") == id && event.data.value("status", "") == "concluded";
  };
}

// QEMU reports job failures as text only; these two are the user's mistakes
// rather than ours (save_snapshot / load_snapshot in migration/savevm.c).
ErrorCode CodeForJobError(std::string_view text) {
  if (text.find("already exists") != std::string_view::npos) return ErrorCode::kConflict;
  if (text.find("does not exist") != std::string_view::npos) return ErrorCode::kNotFound;
  return ErrorCode::kInternal;
}

json NodeList(const std::string& node) { return json::array({node}); }

// QEMU resolves a tag as a snapshot id first ("1", "2", ... in creation
// order): loading a snapshot named "1" loads whichever has id 1 (seen with
// QEMU 7.2). Names of digits only would alias ids, so none is accepted.
Result<void> CheckNotAnId(const std::string& name, std::string_view context) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Fail(ErrorCode::kInvalidArgument,
                std::string(context) + ": a name of digits only would be taken for a QEMU snapshot id");
  }
  return {};
}

// The job's entry in `query-jobs`; null if QEMU does not list it.
boost::asio::awaitable<qmp::QmpResult<json>> FindJob(qmp::QmpClient& qmp, const std::string& id,
                                                     milliseconds timeout) {
  auto jobs = co_await qmp.Execute("query-jobs", nullptr, timeout);
  if (!jobs) co_return std::unexpected(jobs.error());
  if (jobs->is_array()) {
    for (const json& job : *jobs) {
      if (job.is_object() && job.value("id", "") == id) co_return job;
    }
  }
  co_return json();
}

// After a timeout: no job may be left behind, or its id and a "concluded"
// entry would linger in QEMU. Snapshot jobs do their work in one step that
// cancelling cannot interrupt, so this mostly waits for it to end.
boost::asio::awaitable<void> AbandonJob(qmp::QmpClient& qmp, const std::string& id) {
  json by_id = {{"id", id}};
  qmp::EventWaiter concluded = qmp.ExpectEvent("JOB_STATUS_CHANGE", ConcludedFilter(id));
  auto job = co_await FindJob(qmp, id, kCleanupTimeout);
  if (!job || job->is_null()) co_return;  // QEMU unresponsive, or no such job
  if (job->value("status", "") != "concluded") {
    co_await qmp.Execute("job-cancel", by_id, kCleanupTimeout);
    co_await concluded.Wait(kCleanupTimeout);
  }
  co_await qmp.Execute("job-dismiss", by_id, kCleanupTimeout);
}

// Runs one snapshot job to its end: start it, wait for its
// JOB_STATUS_CHANGE "concluded" (the waiter is registered first; QEMU may
// conclude the job before it replies), read its error, dismiss it.
boost::asio::awaitable<Result<void>> RunJob(qmp::QmpClient& qmp, std::string verb, json arguments,
                                            const Deadline& deadline, std::string context) {
  const std::string id = NextJobId(verb);
  const std::string command = "snapshot-" + verb;
  arguments["job-id"] = id;
  qmp::EventWaiter concluded = qmp.ExpectEvent("JOB_STATUS_CHANGE", ConcludedFilter(id));
  const std::string timed_out = fmt::format("{}: did not finish within {} ms", context, deadline.timeout().count());

  // The reply comes only after the job's work is done, so this may be the
  // long wait.
  auto started = co_await qmp.Execute(command, arguments, deadline.Remaining());
  if (!started) {
    if (started.error().kind == Kind::kTimeout) {
      co_await AbandonJob(qmp, id);
      co_return Fail(ErrorCode::kTimeout, timed_out);
    }
    co_return Fail(Wrapped(started.error(), context));
  }
  auto event = co_await concluded.Wait(deadline.Remaining());
  if (!event) {
    if (event.error().kind == Kind::kTimeout) {
      co_await AbandonJob(qmp, id);
      co_return Fail(ErrorCode::kTimeout, timed_out);
    }
    co_return Fail(Wrapped(event.error(), context + ": waiting for the job"));
  }

  const milliseconds query_timeout = std::max(deadline.Remaining(), kCleanupTimeout);
  auto job = co_await FindJob(qmp, id, query_timeout);
  json by_id = {{"id", id}};
  co_await qmp.Execute("job-dismiss", by_id, kCleanupTimeout);
  if (!job) co_return Fail(Wrapped(job.error(), context + ": reading the job's outcome"));
  if (job->is_null()) co_return Fail(ErrorCode::kInternal, context + ": QEMU lost the job " + id);
  // Per QAPI, a concluded job without "error" succeeded.
  if (job->contains("error")) {
    const std::string text = job->value("error", std::string("failed"));
    co_return Fail(CodeForJobError(text), context + ": " + text);
  }
  co_return Result<void>{};
}

boost::asio::awaitable<Result<bool>> IsRunning(qmp::QmpClient& qmp, milliseconds timeout) {
  auto status = co_await qmp.Execute("query-status", nullptr, timeout);
  if (!status) co_return Fail(Wrapped(status.error(), "query-status"));
  co_return status->value("running", false);
}

// QEMU 7.2 leaves the VM paused after a failed load; a VM that was running
// is resumed so the caller's idea of its state stays true. (A load that
// failed halfway leaves a guest that may not survive this; that shows in
// its health check, whereas a silently paused VM would not.)
boost::asio::awaitable<Result<void>> ResumeIfStopped(qmp::QmpClient& qmp, bool was_running, milliseconds timeout) {
  if (!was_running) co_return Result<void>{};
  auto running = co_await IsRunning(qmp, timeout);
  if (!running) co_return Fail(running.error());
  if (*running) co_return Result<void>{};
  auto resumed = co_await qmp.Execute("cont", nullptr, timeout);
  if (!resumed) co_return Fail(Wrapped(resumed.error(), "resume after the job"));
  co_return Result<void>{};
}

boost::asio::awaitable<Result<std::vector<qmp::NamedSnapshot>>> ListWithin(qmp::QmpClient& qmp, const std::string& node,
                                                                     milliseconds timeout) {
  // flat: leave out the nested backing-chain data; each node is listed anyway.
  json arguments = {{"flat", true}};
  auto nodes = co_await qmp.Execute("query-named-block-nodes", arguments, timeout);
  if (!nodes) co_return Fail(Wrapped(nodes.error(), "list snapshots"));
  if (nodes->is_array()) {
    for (const json& entry : *nodes) {
      if (!entry.is_object() || entry.value("node-name", "") != node) continue;
      std::vector<qmp::NamedSnapshot> snapshots;
      const json image = entry.value("image", json::object());
      for (const json& snapshot : image.value("snapshots", json::array())) {
        const auto vm_state = snapshot.value("vm-state-size", std::uint64_t{0});
        if (vm_state == 0) continue;
        snapshots.push_back({.name = snapshot.value("name", ""),
                             .vm_state_bytes = vm_state,
                             .created_at = snapshot.value("date-sec", std::int64_t{0})});
      }
      co_return snapshots;
    }
  }
  co_return Fail(ErrorCode::kNotFound, "list snapshots: QEMU has no block node '" + node + "'");
}

boost::asio::awaitable<Result<bool>> Exists(qmp::QmpClient& qmp, const std::string& name, const std::string& node,
                                            milliseconds timeout) {
  auto snapshots = co_await ListWithin(qmp, node, timeout);
  if (!snapshots) co_return Fail(snapshots.error());
  co_return std::any_of(snapshots->begin(), snapshots->end(),
                        [&](const qmp::NamedSnapshot& snapshot) { return snapshot.name == name; });
}

// Save and load stop the VM while they work; both end with the VM in the run
// state it had before, and a job error takes precedence over a resume error.
boost::asio::awaitable<Result<void>> RunStateJob(qmp::QmpClient& qmp, std::string verb, json arguments,
                                                 const Deadline& deadline, std::string context) {
  auto was_running = co_await IsRunning(qmp, deadline.Remaining());
  if (!was_running) co_return Fail(was_running.error().Wrap(context));
  auto done = co_await RunJob(qmp, std::move(verb), std::move(arguments), deadline, context);
  const milliseconds resume_timeout = std::max(deadline.Remaining(), kCleanupTimeout);
  auto resumed = co_await ResumeIfStopped(qmp, *was_running, resume_timeout);
  if (!done) co_return done;
  if (!resumed) co_return Fail(resumed.error().Wrap(context));
  co_return Result<void>{};
}

}  // namespace

boost::asio::awaitable<Result<void>> SaveNamedSnapshot(qmp::QmpClient& qmp, const std::string& name,
                                                       const std::string& node, milliseconds timeout) {
  const Deadline deadline(timeout);
  const std::string context = "save snapshot '" + name + "'";
  if (auto valid = CheckNotAnId(name, context); !valid) co_return Fail(valid.error());
  // QEMU 7.2 refuses an existing tag too, but only after pausing the VM.
  auto exists = co_await Exists(qmp, name, node, deadline.Remaining());
  if (!exists) co_return Fail(exists.error().Wrap(context));
  if (*exists) co_return Fail(ErrorCode::kConflict, context + ": a snapshot of that name exists");
  json arguments = {{"tag", name}, {"vmstate", node}, {"devices", NodeList(node)}};
  co_return co_await RunStateJob(qmp, "save", std::move(arguments), deadline, context);
}

boost::asio::awaitable<Result<void>> LoadNamedSnapshot(qmp::QmpClient& qmp, const std::string& name,
                                                       const std::string& node, milliseconds timeout) {
  const Deadline deadline(timeout);
  const std::string context = "load snapshot '" + name + "'";
  if (auto valid = CheckNotAnId(name, context); !valid) co_return Fail(valid.error());
  auto exists = co_await Exists(qmp, name, node, deadline.Remaining());
  if (!exists) co_return Fail(exists.error().Wrap(context));
  if (!*exists) co_return Fail(ErrorCode::kNotFound, context + ": no such snapshot");
  json arguments = {{"tag", name}, {"vmstate", node}, {"devices", NodeList(node)}};
  co_return co_await RunStateJob(qmp, "load", std::move(arguments), deadline, context);
}

boost::asio::awaitable<Result<void>> DeleteNamedSnapshot(qmp::QmpClient& qmp, const std::string& name,
                                                         const std::string& node, milliseconds timeout) {
  const Deadline deadline(timeout);
  const std::string context = "delete snapshot '" + name + "'";
  if (auto valid = CheckNotAnId(name, context); !valid) co_return Fail(valid.error());
  auto exists = co_await Exists(qmp, name, node, deadline.Remaining());
  if (!exists) co_return Fail(exists.error().Wrap(context));
  if (!*exists) co_return Fail(ErrorCode::kNotFound, context + ": no such snapshot");
  json arguments = {{"tag", name}, {"devices", NodeList(node)}};
  co_return co_await RunJob(qmp, "delete", std::move(arguments), deadline, context);
}

boost::asio::awaitable<Result<std::vector<qmp::NamedSnapshot>>> ListNamedSnapshots(qmp::QmpClient& qmp,
                                                                             const std::string& node) {
  return ListWithin(qmp, node, qmp::QmpClient::kDefaultCommandTimeout);
}

}  // namespace agentvm
