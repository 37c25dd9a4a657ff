// Named snapshots against a fake QEMU that keeps a snapshot table and a run
// state and runs snapshot jobs the way QEMU 7.2 does (events around the
// reply, outcome in query-jobs, dismissed by the client): what the caller
// gets back, what the VM is left in, and that no job is left behind.
#include "qmp/named_snapshots.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "qmp/testing/qmp_peer_test.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kSavedAt = 1795494724;

// Built outside coroutine bodies: g++ 12 rejects some braced json there.
json Snapshot(const std::string& name, std::uint64_t vm_state_size) {
  return {{"id", "1"},          {"name", name},         {"vm-state-size", vm_state_size},
          {"date-sec", kSavedAt}, {"date-nsec", 4000},  {"vm-clock-sec", 8},
          {"vm-clock-nsec", 1}};
}
json BlockNodes(const std::vector<json>& snapshots) {
  json disk = {{"node-name", "disk0"}, {"drv", "qcow2"}, {"image", {{"format", "qcow2"}}}};
  if (!snapshots.empty()) disk["image"]["snapshots"] = json(snapshots);
  json base = {{"node-name", "base0"}, {"drv", "qcow2"}, {"ro", true}, {"image", {{"format", "qcow2"}}}};
  return json::array({base, disk});
}
json JobStatus(const std::string& id, const char* status) { return {{"id", id}, {"status", status}}; }
json JobEntry(const std::string& id, const std::string& type, const std::optional<std::string>& error) {
  json job = {{"id", id}, {"type", type}, {"status", "concluded"}, {"current-progress", 1}, {"total-progress", 1}};
  if (error) job["error"] = *error;
  return job;
}
json RunStatus(bool running) { return {{"running", running}, {"status", running ? "running" : "paused"}}; }

// How the fake runs the next snapshot job.
enum class Job {
  kSucceeds,
  kFails,          // concludes with `job_error_`
  kNeverEnds,      // replies, then never concludes until cancelled
  kQemuDies,       // hangs up instead of replying
  kSlow,           // succeeds, but only after kSlowJob (QEMU answers nothing meanwhile)
};

constexpr std::chrono::milliseconds kSlowJob{500};

class NamedSnapshotsTest : public qmp::testing::QmpPeerTest {
 protected:
  // The fake QEMU: serves until the client hangs up.
  awaitable<void> Serve() {
    if (!co_await peer().ServeHandshake()) co_return;
    for (;;) {
      auto command = co_await peer().ReadMessage();
      if (!command) co_return;
      const std::string name = command->value("execute", "");
      seen_.push_back(name);
      const json arguments = command->value("arguments", json::object());
      if (name == "query-named-block-nodes") {
        co_await peer().Reply(*command, BlockNodes(snapshots_));
      } else if (name == "query-status") {
        co_await peer().Reply(*command, RunStatus(running_));
      } else if (name == "cont") {
        running_ = true;
        co_await peer().Reply(*command);
      } else if (name == "query-jobs") {
        json list = json::array();
        for (const auto& [id, job] : jobs_) list.push_back(job);
        co_await peer().Reply(*command, list);
      } else if (name == "job-dismiss") {
        jobs_.erase(arguments.value("id", ""));
        co_await peer().Reply(*command);
      } else if (name == "job-cancel") {
        const std::string id = arguments.value("id", "");
        jobs_[id] = JobEntry(id, "snapshot-save", "Operation cancelled");
        co_await peer().Reply(*command);
        co_await peer().SendEvent("JOB_STATUS_CHANGE", JobStatus(id, "concluded"));
      } else if (name.starts_with("snapshot-")) {
        job_arguments_ = arguments;
        if (!co_await RunSnapshotJob(*command, name, arguments)) co_return;
      } else {
        co_await peer().ReplyError(*command, "CommandNotFound", "The command " + name + " has not been found");
      }
    }
  }

  // As QEMU 7.2: the work happens before the reply; "concluded" follows it.
  awaitable<bool> RunSnapshotJob(const json& command, const std::string& name, const json& arguments) {
    const std::string id = arguments.value("job-id", "");
    const std::string tag = arguments.value("tag", "");
    co_await peer().SendEvent("JOB_STATUS_CHANGE", JobStatus(id, "created"));
    co_await peer().SendEvent("JOB_STATUS_CHANGE", JobStatus(id, "running"));
    if (job_ == Job::kQemuDies) {
      peer().Close();
      co_return false;
    }
    if (job_ == Job::kSlow) {
      // Stands for QEMU's main loop doing the whole save before reading on.
      boost::asio::steady_timer busy(runner_.executor(), kSlowJob);
      co_await busy.async_wait(boost::asio::use_awaitable);
    }
    std::optional<std::string> error;
    if (job_ == Job::kFails) {
      error = job_error_;
      if (name == "snapshot-load") running_ = false;  // QEMU 7.2 leaves it paused
    } else if (name == "snapshot-save") {
      snapshots_.push_back(Snapshot(tag, 98'632'372));
    } else if (name == "snapshot-delete") {
      std::erase_if(snapshots_, [&](const json& s) { return s.value("name", "") == tag; });
    }
    co_await peer().Reply(command);
    if (job_ == Job::kNeverEnds) {
      jobs_[id] = JobStatus(id, "running");
      co_return true;
    }
    jobs_[id] = JobEntry(id, name, error);
    co_await peer().SendEvent("JOB_STATUS_CHANGE", JobStatus(id, error ? "aborting" : "pending"));
    co_await peer().SendEvent("JOB_STATUS_CHANGE", JobStatus(id, "concluded"));
    co_return true;
  }

  // Runs `call` as the client after the handshake, against Serve().
  template <class Call>
  void Run(Call call) {
    runner_.Spawn([this]() -> awaitable<void> { co_await Serve(); });
    runner_.Spawn([this, call]() -> awaitable<void> {
      auto shaken = co_await client().Handshake(5s);
      CO_ASSERT_TRUE(shaken);
      const auto start = Clock::now();
      result_ = co_await call(client());
      elapsed_ = Clock::now() - start;
      client().Close();
    });
    ASSERT_TRUE(runner_.RunFor(10s)) << runner_.Describe();
    ASSERT_TRUE(result_.has_value());
  }

  bool Sent(const std::string& command) const { return std::ranges::find(seen_, command) != seen_.end(); }
  std::vector<std::string> SnapshotNames() const {
    std::vector<std::string> names;
    for (const json& s : snapshots_) names.push_back(s.value("name", ""));
    return names;
  }

  // Fake QEMU state.
  std::vector<json> snapshots_;
  bool running_ = true;
  Job job_ = Job::kSucceeds;
  std::string job_error_;
  std::map<std::string, json> jobs_;
  std::vector<std::string> seen_;
  json job_arguments_;

  std::optional<Result<void>> result_;
  Clock::duration elapsed_{};
};

// Coroutines owning their arguments: the library takes names by reference.
auto Save(std::string name, std::chrono::milliseconds timeout = 5s) {
  return [name, timeout](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    co_return co_await SaveNamedSnapshot(qmp, name, "disk0", timeout);
  };
}
auto Load(std::string name) {
  return [name](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    co_return co_await LoadNamedSnapshot(qmp, name, "disk0", 5s);
  };
}
auto Delete(std::string name) {
  return [name](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    co_return co_await DeleteNamedSnapshot(qmp, name, "disk0", 5s);
  };
}

TEST_F(NamedSnapshotsTest, SaveWritesMemoryAndDiskToTheOverlayOnly) {
  Run(Save("before-tests"));
  EXPECT_TRUE(*result_) << result_->error().message;
  EXPECT_EQ(SnapshotNames(), std::vector<std::string>{"before-tests"});
  EXPECT_EQ(job_arguments_["tag"], "before-tests");
  EXPECT_EQ(job_arguments_["vmstate"], "disk0");
  EXPECT_EQ(job_arguments_["devices"], json::array({"disk0"}));  // never the read-only backing files
  EXPECT_TRUE(running_);
  EXPECT_TRUE(jobs_.empty()) << "job left in QEMU";
}

TEST_F(NamedSnapshotsTest, ListShowsFullSnapshotsOnly) {
  snapshots_.push_back(Snapshot("s1", 98'632'372));
  snapshots_.push_back(Snapshot("disk-only", 0));  // qemu-img snapshot -c
  snapshots_.push_back(Snapshot("s2", 1234));
  std::optional<Result<std::vector<qmp::NamedSnapshot>>> listed;
  Run([&](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    listed = co_await ListNamedSnapshots(qmp, "disk0");
    co_return Result<void>{};
  });
  ASSERT_TRUE(listed && *listed) << (listed ? listed->error().message : "");
  ASSERT_EQ((*listed)->size(), 2u);
  EXPECT_EQ((**listed)[0].name, "s1");
  EXPECT_EQ((**listed)[0].vm_state_bytes, 98'632'372u);
  EXPECT_EQ((**listed)[0].created_at, kSavedAt);
  EXPECT_EQ((**listed)[1].name, "s2");
}

TEST_F(NamedSnapshotsTest, ListOfAnUnknownNodeIsNotFound) {
  std::optional<Result<std::vector<qmp::NamedSnapshot>>> listed;
  Run([&](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    listed = co_await ListNamedSnapshots(qmp, "disk7");
    co_return Result<void>{};
  });
  ASSERT_TRUE(listed && !*listed);
  EXPECT_EQ(listed->error().code, ErrorCode::kNotFound);
}

TEST_F(NamedSnapshotsTest, LoadAndDeleteAnExistingSnapshot) {
  snapshots_.push_back(Snapshot("s1", 98'632'372));
  Run([](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    auto loaded = co_await LoadNamedSnapshot(qmp, "s1", "disk0", 5s);
    if (!loaded) co_return loaded;
    co_return co_await DeleteNamedSnapshot(qmp, "s1", "disk0", 5s);
  });
  EXPECT_TRUE(*result_) << result_->error().message;
  EXPECT_TRUE(Sent("snapshot-load"));
  EXPECT_TRUE(SnapshotNames().empty());
  EXPECT_TRUE(running_);
  EXPECT_TRUE(jobs_.empty()) << "job left in QEMU";
}

TEST_F(NamedSnapshotsTest, FailedJobCarriesQemusText) {
  job_ = Job::kFails;
  job_error_ = "Error while writing VM state: No space left on device";
  Run(Save("s1"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kInternal);
  EXPECT_EQ(result_->error().message, "save snapshot 's1': Error while writing VM state: No space left on device");
  EXPECT_TRUE(jobs_.empty()) << "failed job not dismissed";
}

TEST_F(NamedSnapshotsTest, FailedLoadDoesNotLeaveTheVmPaused) {
  snapshots_.push_back(Snapshot("s1", 98'632'372));
  job_ = Job::kFails;
  job_error_ = "Error -22 while loading VM state";
  Run(Load("s1"));
  ASSERT_FALSE(*result_);
  EXPECT_NE(result_->error().message.find("Error -22 while loading VM state"), std::string::npos)
      << result_->error().message;
  EXPECT_TRUE(running_) << "QEMU paused the VM and nobody resumed it";
}

TEST_F(NamedSnapshotsTest, LoadKeepsAPausedVmPaused) {
  snapshots_.push_back(Snapshot("s1", 98'632'372));
  running_ = false;
  Run(Load("s1"));
  EXPECT_TRUE(*result_) << result_->error().message;
  EXPECT_FALSE(Sent("cont"));
}

TEST_F(NamedSnapshotsTest, SavingAnExistingNameIsAConflictAndLeavesTheVmAlone) {
  snapshots_.push_back(Snapshot("s1", 98'632'372));
  Run(Save("s1"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kConflict) << result_->error().message;
  EXPECT_FALSE(Sent("snapshot-save"));  // QEMU would pause the VM before refusing
  EXPECT_EQ(SnapshotNames().size(), 1u);
}

TEST_F(NamedSnapshotsTest, ExistingNameReportedByQemuIsAConflictToo) {
  // Another client made the snapshot between our check and our job.
  job_ = Job::kFails;
  job_error_ = "Snapshot 's1' already exists in one or more devices";
  Run(Save("s1"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kConflict) << result_->error().message;
}

TEST_F(NamedSnapshotsTest, LoadingAnUnknownNameIsNotFoundAndLeavesTheVmAlone) {
  snapshots_.push_back(Snapshot("s1", 98'632'372));
  Run(Load("s2"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kNotFound) << result_->error().message;
  EXPECT_FALSE(Sent("snapshot-load"));  // QEMU would pause the VM and not resume it
  EXPECT_TRUE(running_);
}

TEST_F(NamedSnapshotsTest, LoadingADiskOnlySnapshotIsNotFound) {
  snapshots_.push_back(Snapshot("disk-only", 0));
  Run(Load("disk-only"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kNotFound);
}

TEST_F(NamedSnapshotsTest, DeletingAnUnknownNameIsNotFound) {
  // QEMU itself reports success for this.
  Run(Delete("nope"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kNotFound) << result_->error().message;
  EXPECT_FALSE(Sent("snapshot-delete"));
}

TEST_F(NamedSnapshotsTest, TimeoutCancelsAndDismissesTheJob) {
  job_ = Job::kNeverEnds;
  Run(Save("s1", 300ms));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kTimeout) << result_->error().message;
  EXPECT_LT(elapsed_, 2s);
  EXPECT_TRUE(Sent("job-cancel"));
  EXPECT_TRUE(jobs_.empty()) << "job left in QEMU";
}

TEST_F(NamedSnapshotsTest, TimeoutWhileQemuIsBusyStillLeavesNoJob) {
  job_ = Job::kSlow;
  Run(Save("s1", 100ms));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kTimeout) << result_->error().message;
  EXPECT_LT(elapsed_, kSlowJob + 1s);
  EXPECT_TRUE(jobs_.empty()) << "job left in QEMU";
  // Too late for the caller, but done: the header says a timeout may still take effect.
  EXPECT_EQ(SnapshotNames(), std::vector<std::string>{"s1"});
}

// QEMU would take "1" for the id of whichever snapshot was made first.
TEST_F(NamedSnapshotsTest, NamesOfDigitsOnlyAreRefusedBeforeAskingQemu) {
  Run(Save("1"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kInvalidArgument) << result_->error().message;
  EXPECT_TRUE(seen_.empty()) << "asked QEMU: " << seen_.front();
}

TEST_F(NamedSnapshotsTest, LoadingOrDeletingNamesOfDigitsOnlyIsRefusedToo) {
  snapshots_.push_back(Snapshot("1", 1234));
  std::optional<Result<void>> deleted;
  Run([&deleted](qmp::QmpClient& qmp) -> awaitable<Result<void>> {
    deleted = co_await DeleteNamedSnapshot(qmp, "1", "disk0", 5s);
    co_return co_await LoadNamedSnapshot(qmp, "1", "disk0", 5s);
  });
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(deleted && !*deleted);
  EXPECT_EQ(deleted->error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(seen_.empty()) << "asked QEMU: " << seen_.front();
}

TEST_F(NamedSnapshotsTest, QemuGoingAwayIsUnavailable) {
  job_ = Job::kQemuDies;
  Run(Save("s1"));
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kUnavailable) << result_->error().message;
  EXPECT_LT(elapsed_, 1s);
}

}  // namespace
}  // namespace agentvm
