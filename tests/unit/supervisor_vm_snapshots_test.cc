// The Vm's snapshots without QEMU: a clone restored from a golden snapshot
// (and the cold boot when its state does not load), saving a golden VM's
// state, and named snapshots, against the fake QEMU's monitor.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/testing/fake_vm_test.h"

namespace agentvm {
namespace {

using testing::FakeQemu;
using States = std::vector<std::string>;

class VmSnapshotsTest : public testing::FakeVmTest {
 protected:
  // A golden snapshot on disk whose state file holds `state`.
  GoldenSnapshot Golden(std::string_view state) {
    const std::filesystem::path dir = scratch_ / "golden";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "state") << state;
    return GoldenSnapshot{.dir = dir, .state_file = dir / "state", .disk = dir / "disk.qcow2"};
  }

  bool HasAction(const FakeQemu& qemu, std::string_view prefix) const {
    const auto actions = qemu.AgentActions();
    return std::ranges::any_of(actions, [&](const std::string& line) { return line.starts_with(prefix); });
  }
};

TEST_F(VmSnapshotsTest, AGoldenCloneIsLoadedResumedAndGivenItsIdentity) {
  Vm& vm = MakeRunningVm(Golden(FakeQemu::kStateMagic));
  EXPECT_EQ(states_, (States{"creating", "starting", "running"}));
  EXPECT_EQ(vm.Info().boot, "restore");
  EXPECT_EQ(vm.restore_error(), "");
  ASSERT_EQ(host_->launched().size(), 1u);
  const FakeQemu& qemu = host_->qemu();
  EXPECT_TRUE(qemu.HasArg("-incoming"));
  // Its overlay sits on the frozen disk, which QEMU reads too.
  EXPECT_TRUE(HasEvent("overlay " + (scratch_ / "golden" / "disk.qcow2").string()));
  EXPECT_NE(std::ranges::find(qemu.launch().read_only_paths, (scratch_ / "golden" / "disk.qcow2").string()),
            qemu.launch().read_only_paths.end());
  // A virtio-serial port is connected before the load, the guest resumed after it.
  EXPECT_LT(EventIndex("connect guest virtio-serial"), EventIndex("qmp migrate-incoming"));
  EXPECT_LT(EventIndex("qmp migrate-incoming"), EventIndex("qmp cont"));
  EXPECT_TRUE(qemu.guest_running());
  EXPECT_TRUE(HasAction(qemu, std::string("hostname ") + kVmId));
  EXPECT_TRUE(HasAction(qemu, "clock "));
  EXPECT_TRUE(HasAction(qemu, "entropy "));
}

TEST_F(VmSnapshotsTest, AVsockCloneConnectsAfterItIsResumed) {
  context_.channel = ChannelKind::kVsock;
  MakeRunningVm(Golden(FakeQemu::kStateMagic));
  EXPECT_EQ(vm_->Info().boot, "restore");
  EXPECT_LT(EventIndex("qmp cont"), EventIndex("connect guest vsock"));
}

TEST_F(VmSnapshotsTest, AStateThatDoesNotLoadFallsBackToAColdBoot) {
  Vm& vm = MakeRunningVm(Golden("not a migration stream"));
  EXPECT_EQ(vm.Info().boot, "cold");
  EXPECT_EQ(vm.restore_error(),
            "load golden state: load state: incoming migration failed: QEMU exits after a failed load; its log says "
            "why (qemu: qemu-system-x86_64: load of migration failed: Invalid argument)");
  // The restore's QEMU exited on its own without failing the VM; a fresh
  // one cold-booted on a fresh overlay over the image.
  EXPECT_EQ(states_, (States{"creating", "starting", "creating", "starting", "running"}));
  ASSERT_EQ(host_->launched().size(), 2u);
  EXPECT_TRUE(host_->launched()[0]->HasArg("-incoming"));
  EXPECT_EQ(host_->launched()[0]->exit_status()->code, 1);
  EXPECT_FALSE(host_->launched()[1]->HasArg("-incoming"));
  EXPECT_TRUE(HasEvent("overlay " + std::filesystem::absolute(vm.image().rootfs).string()));
  EXPECT_EQ(vm.Info().pid, host_->launched()[1]->pid());
}

TEST_F(VmSnapshotsTest, SavingAGoldenVmsStateWritesItToTheFdAndEndsQemu) {
  Vm& vm = MakeRunningVm();
  const std::string path = (scratch_ / "saved-state").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  auto saved = Run(vm.SaveStateAndEnd(fd));
  ::close(fd);
  ASSERT_TRUE(saved) << saved.error().message;
  std::ifstream in(path);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), FakeQemu::kStateMagic);
  EXPECT_EQ(states_, (States{"creating", "starting", "running", "stopping", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "saved as a golden snapshot");
  EXPECT_LT(EventIndex("qmp stop"), EventIndex("qmp migrate"));
  EXPECT_LT(EventIndex("qmp migrate"), EventIndex("qmp quit"));
  EXPECT_EQ(host_->qemu().exit_status()->code, 0);  // quit, not killed
}

TEST_F(VmSnapshotsTest, NamedSnapshotsAreSavedListedRestoredAndDeleted) {
  Vm& vm = MakeRunningVm();
  auto saved = Run(vm.SaveSnapshot("before-tests"));
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->name, "before-tests");
  EXPECT_GT(saved->vm_state_bytes, 0u);
  auto listed = Run(vm.ListSnapshots());
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "before-tests");

  auto restored = Run(vm.RestoreSnapshot("before-tests"));
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_TRUE(HasEvent("qmp snapshot-load"));
  EXPECT_TRUE(HasAction(host_->qemu(), "clock "));  // the guest's clock is set after the load
  EXPECT_EQ(vm.state(), VmState::kRunning);

  auto deleted = Run(vm.DeleteSnapshot("before-tests"));
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_TRUE(host_->qemu().snapshots().empty());
  auto none = Run(vm.RestoreSnapshot("before-tests"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(states_, (States{"creating", "starting", "running"}));  // snapshots change no state
}

TEST_F(VmSnapshotsTest, NamedSnapshotsNeedARunningVm) {
  Vm& vm = MakeRunningVm();
  host_->qemu().Crash(SIGKILL);
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kFailed; }));
  auto saved = Run(vm.SaveSnapshot("late"));
  ASSERT_FALSE(saved);
  EXPECT_EQ(saved.error().code, ErrorCode::kConflict);
}

}  // namespace
}  // namespace agentvm
