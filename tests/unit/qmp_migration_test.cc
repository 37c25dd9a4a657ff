// SaveState / LoadState against a fake QEMU: the exact QMP conversation, the
// fd handed over with getfd, and every way a migration can end (completed,
// failed with QEMU's reason, QEMU gone, no answer in time).
#include "qmp/migration.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "qmp/testing/qmp_peer_test.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using Commands = std::vector<std::string>;

// Built outside coroutine bodies: g++ 12 rejects some braced json there.
json Status(const char* status) { return {{"status", status}}; }
json FailedMigrateInfo(const char* why) { return {{"status", "failed"}, {"error-desc", why}}; }

bool SameFile(int a, int b) {
  struct stat sa {}, sb {};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

class MigrationTest : public qmp::testing::QmpPeerTest {
 protected:
  // Replies {} to every command until one called `name` arrives, and returns
  // that one unanswered; nullopt if the client hung up first.
  awaitable<std::optional<json>> AnswerUntil(std::string name) {
    for (;;) {
      auto command = co_await peer().ReadMessage();
      if (!command) co_return std::nullopt;
      seen_.push_back(command->value("execute", ""));
      if (seen_.back() == name) co_return command;
      const std::string& last = seen_.back();
      if (last == "migrate-set-parameters") parameters_ = command->value("arguments", json());
      if (last == "migrate-set-capabilities") capabilities_ = command->value("arguments", json());
      if (last == "getfd") getfd_ = command->value("arguments", json());
      co_await peer().Reply(*command);
    }
  }

  awaitable<void> SendStatus(const char* status) {
    json data = Status(status);
    co_await peer().SendEvent("MIGRATION", data);
  }

  // Runs `call` (SaveState or LoadState) as the client, after the handshake.
  template <class Call>
  void Client(Call call) {
    runner_.Spawn([this, call]() -> awaitable<void> {
      auto shaken = co_await client().Handshake(5s);
      CO_ASSERT_TRUE(shaken);
      const auto start = Clock::now();
      result_ = co_await call(client(), file_.get());
      elapsed_ = Clock::now() - start;
    });
  }

  UniqueFd file_{::open("/dev/null", O_RDWR | O_CLOEXEC)};
  std::optional<Result<void>> result_;
  Clock::duration elapsed_{};
  Commands seen_;
  json parameters_;
  json capabilities_;
  json getfd_;

  // The state migrate-set-capabilities gave `name`; null if it was not set.
  json Capability(const std::string& name) const {
    for (const json& capability : capabilities_.value("capabilities", json::array())) {
      if (capability.value("capability", "") == name) return capability["state"];
    }
    return nullptr;
  }
};

awaitable<Result<void>> Save(qmp::QmpClient& qmp, int fd) { return SaveState(qmp, fd, RamInStream::kAll, 5s); }
awaitable<Result<void>> Load(qmp::QmpClient& qmp, int fd) { return LoadState(qmp, fd, RamInStream::kAll, 5s); }

TEST_F(MigrationTest, SaveStopsHandsOverTheFileAndWaitsForCompletion) {
  Client(Save);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto migrate = co_await AnswerUntil("migrate");
    CO_ASSERT_TRUE(migrate);
    EXPECT_EQ((*migrate)["arguments"]["uri"], "fd:migration");
    // A fast save may finish before QEMU's reply is read: events first.
    co_await SendStatus("setup");
    co_await SendStatus("active");
    co_await SendStatus("completed");
    co_await peer().Reply(*migrate);
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  EXPECT_TRUE(*result_) << result_->error().message;
  EXPECT_EQ(seen_, (Commands{"stop", "migrate-set-capabilities", "migrate-set-parameters", "getfd", "migrate"}));
  EXPECT_EQ(getfd_["fdname"], "migration");
  ASSERT_EQ(peer().received_fds().size(), 1u);
  EXPECT_TRUE(SameFile(peer().received_fds()[0].get(), file_.get()));
  // QEMU's default 128 MiB/s would make saving a paused VM take seconds.
  EXPECT_GE(parameters_.value("max-bandwidth", std::int64_t{0}), std::int64_t{1} << 34);
}

// A memory template's source saves devices only; its clones load the same
// way. Both set x-ignore-shared explicitly, and a full copy clears it.
TEST_F(MigrationTest, IgnoringSharedRamIsSetExplicitlyOnBothEnds) {
  for (const RamInStream ram : {RamInStream::kIgnoreShared, RamInStream::kAll}) {
    for (const bool save : {true, false}) {
      capabilities_ = json();
      Client([ram, save](qmp::QmpClient& qmp, int fd) {
        return save ? SaveState(qmp, fd, ram, 5s) : LoadState(qmp, fd, ram, 5s);
      });
      runner_.Spawn([this, save]() -> awaitable<void> {
        CO_ASSERT_TRUE(co_await peer().ServeHandshake());
        auto started = co_await AnswerUntil(save ? "migrate" : "migrate-incoming");
        CO_ASSERT_TRUE(started);
        co_await SendStatus("completed");
        co_await peer().Reply(*started);
      });
      ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
      ASSERT_TRUE(result_ && *result_);
      EXPECT_EQ(Capability("x-ignore-shared"), ram == RamInStream::kIgnoreShared) << (save ? "save" : "load");
      EXPECT_EQ(Capability("events"), true);
      // A fresh QEMU for the next round.
      pair_ = qmp::testing::MakeClientAndPeer(runner_.executor());
      seen_.clear();
      result_.reset();
    }
  }
}

TEST_F(MigrationTest, SaveFailureCarriesQemusReason) {
  Client(Save);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto migrate = co_await AnswerUntil("migrate");
    CO_ASSERT_TRUE(migrate);
    co_await peer().Reply(*migrate);
    co_await SendStatus("failed");
    auto query = co_await AnswerUntil("query-migrate");
    CO_ASSERT_TRUE(query);
    json info = FailedMigrateInfo("Unable to write to file: No space left on device");
    co_await peer().Reply(*query, info);
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().message,
            "save state: migration failed: Unable to write to file: No space left on device");
}

TEST_F(MigrationTest, SaveRefusedByQemuClosesTheFd) {
  Client(Save);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto migrate = co_await AnswerUntil("migrate");
    CO_ASSERT_TRUE(migrate);
    co_await peer().ReplyError(*migrate, "GenericError", "disallowing migration blocker (x) in use");
    auto closefd = co_await AnswerUntil("closefd");
    CO_ASSERT_TRUE(closefd);
    EXPECT_EQ((*closefd)["arguments"]["fdname"], "migration");
    co_await peer().Reply(*closefd);
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_NE(result_->error().message.find("disallowing migration blocker"), std::string::npos)
      << result_->error().message;
}

TEST_F(MigrationTest, SaveTimeoutCancelsTheMigration) {
  Client([](qmp::QmpClient& qmp, int fd) { return SaveState(qmp, fd, RamInStream::kAll, 300ms); });
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto migrate = co_await AnswerUntil("migrate");
    CO_ASSERT_TRUE(migrate);
    co_await peer().Reply(*migrate);
    co_await SendStatus("active");  // and never more
    auto cancel = co_await AnswerUntil("migrate_cancel");
    CO_ASSERT_TRUE(cancel);
    co_await peer().Reply(*cancel);
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kTimeout);
  EXPECT_LT(elapsed_, 2s);
}

TEST_F(MigrationTest, SaveNoticesQemuDying) {
  Client(Save);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto migrate = co_await AnswerUntil("migrate");
    CO_ASSERT_TRUE(migrate);
    co_await peer().Reply(*migrate);
    peer().Close();
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kUnavailable);
  EXPECT_LT(elapsed_, 1s);
}

TEST_F(MigrationTest, LoadHandsOverTheFileAndWaitsForCompletion) {
  Client(Load);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto incoming = co_await AnswerUntil("migrate-incoming");
    CO_ASSERT_TRUE(incoming);
    EXPECT_EQ((*incoming)["arguments"]["uri"], "fd:migration");
    co_await peer().Reply(*incoming);
    co_await SendStatus("active");
    co_await SendStatus("completed");
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  EXPECT_TRUE(*result_) << result_->error().message;
  // No `stop` (the VM is not running yet) and no `cont`: the caller resumes.
  EXPECT_EQ(seen_, (Commands{"migrate-set-capabilities", "getfd", "migrate-incoming"}));
  EXPECT_EQ(getfd_["fdname"], "migration");
  ASSERT_EQ(peer().received_fds().size(), 1u);
  EXPECT_TRUE(SameFile(peer().received_fds()[0].get(), file_.get()));
}

TEST_F(MigrationTest, LoadFailsPromptlyWhenQemuExits) {
  // What QEMU 7.2 does with a corrupt stream: "failed", then exit(1).
  Client(Load);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto incoming = co_await AnswerUntil("migrate-incoming");
    CO_ASSERT_TRUE(incoming);
    co_await peer().Reply(*incoming);
    co_await SendStatus("active");
    peer().Close();
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kUnavailable);
  EXPECT_NE(result_->error().message.find("QEMU exited during the incoming migration"), std::string::npos)
      << result_->error().message;
  EXPECT_LT(elapsed_, 1s);
}

TEST_F(MigrationTest, LoadFailedStatusIsAnErrorEvenIfQemuStaysSilent) {
  Client(Load);
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto incoming = co_await AnswerUntil("migrate-incoming");
    CO_ASSERT_TRUE(incoming);
    co_await peer().Reply(*incoming);
    co_await SendStatus("failed");
    // QEMU is exiting: the query-migrate that follows is never answered.
    co_await AnswerUntil("query-migrate");
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_NE(result_->error().message.find("incoming migration failed"), std::string::npos)
      << result_->error().message;
  EXPECT_LT(elapsed_, 2s);
}

TEST_F(MigrationTest, LoadTimesOut) {
  Client([](qmp::QmpClient& qmp, int fd) { return LoadState(qmp, fd, RamInStream::kAll, 300ms); });
  runner_.Spawn([this]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto incoming = co_await AnswerUntil("migrate-incoming");
    CO_ASSERT_TRUE(incoming);
    co_await peer().Reply(*incoming);
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  ASSERT_TRUE(result_);
  ASSERT_FALSE(*result_);
  EXPECT_EQ(result_->error().code, ErrorCode::kTimeout);
  EXPECT_LT(elapsed_, 2s);
}

}  // namespace
}  // namespace agentvm
