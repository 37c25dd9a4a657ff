// GoldenSnapshotBuilder' build policy with a fake boot hook (no QEMU): concurrent
// requests share one build, and a failed build is not retried by every create.
#include "supervisor/golden_snapshot_builder.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "qmp/testing/coroutine_test.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;
using boost::asio::awaitable;
using namespace std::chrono_literals;

class GoldenSnapshotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("agentvm-golden-builds-" + std::to_string(::getpid()));
    fs::create_directories(root_);
    for (const char* file : {"vmlinuz", "initrd.img", "rootfs.qcow2"}) std::ofstream(root_ / file) << file;
    image_ = Image{.name = "tiny", .kernel = root_ / "vmlinuz", .initrd = root_ / "initrd.img",
                   .rootfs = root_ / "rootfs.qcow2"};
    golden_ = std::make_unique<GoldenSnapshotBuilder>(
        runner_.executor(), root_ / "golden", "QEMU 7.2", /*memory_templates=*/true,
        [this](const GoldenKey&) -> awaitable<Result<std::shared_ptr<Vm>>> {
          ++boots_;
          // Long enough for a second request to arrive while this one builds.
          boost::asio::steady_timer booting(co_await boost::asio::this_coro::executor, 50ms);
          co_await booting.async_wait(boost::asio::use_awaitable);
          co_return Fail(ErrorCode::kUnavailable, "the image does not boot");
        },
        [](std::shared_ptr<Vm>) -> awaitable<void> { co_return; });
  }

  void TearDown() override {
    golden_.reset();
    fs::remove_all(root_);
  }

  // A VM of the profile, as a clone-to-be (never booted).
  std::shared_ptr<Vm> Clone() {
    VmSpec spec{.id = "vm-clone", .image = image_, .paths = VmPaths::For(root_ / "run", root_ / "state", "vm-clone")};
    return std::make_shared<Vm>(VmContext{.executor = runner_.executor()}, spec, VmState::kCreating, "", 0);
  }

  qmp::testing::CoroutineRunner runner_;
  fs::path root_;
  Image image_;
  int boots_ = 0;
  std::unique_ptr<GoldenSnapshotBuilder> golden_;
  const GoldenKey key_{.image = "tiny"};
};

TEST_F(GoldenSnapshotsTest, ConcurrentRequestsShareOneBuildAndItsError) {
  const std::shared_ptr<Vm> clone = Clone();
  std::string first, second;
  runner_.Spawn([&]() -> awaitable<void> {
    auto got = co_await golden_->Get(key_, *clone);
    first = got ? "ok" : got.error().message;
  });
  runner_.Spawn([&]() -> awaitable<void> {
    auto got = co_await golden_->Get(key_, *clone);
    second = got ? "ok" : got.error().message;
  });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(boots_, 1);
  EXPECT_NE(first.find("the image does not boot"), std::string::npos) << first;
  EXPECT_EQ(first, second);
  EXPECT_FALSE(golden_->Exists(key_));
}

TEST_F(GoldenSnapshotsTest, AFailedBackgroundBuildIsNotRetriedByTheNextCreate) {
  golden_->BuildSoon(key_);
  golden_->BuildSoon(key_);  // under way: not a second build
  runner_.Spawn([&]() -> awaitable<void> { co_await golden_->WaitIdle(); });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(boots_, 1);

  golden_->BuildSoon(key_);  // failed moments ago: left alone
  runner_.Spawn([&]() -> awaitable<void> { co_await golden_->WaitIdle(); });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(boots_, 1);

  // An explicit request (boot=restore, a pool) still tries at once.
  const std::shared_ptr<Vm> clone = Clone();
  runner_.Spawn([&]() -> awaitable<void> { EXPECT_FALSE(co_await golden_->Get(key_, *clone)); });
  ASSERT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
  EXPECT_EQ(boots_, 2);
}

}  // namespace
}  // namespace agentvm
