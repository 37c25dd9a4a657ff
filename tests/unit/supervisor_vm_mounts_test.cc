// A Vm with mounts (vm_workspace.cc) on the fake host: a virtiofsd per
// mount before QEMU, its device on QEMU's command line, the guest's mounts
// made before the VM is running, and no virtiofsd outliving its QEMU.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/memory_template.h"
#include "supervisor/testing/fake_vm_test.h"

namespace agentvm {
namespace {

using testing::FakeQemu;

class VmMountsTest : public testing::FakeVmTest {
 protected:
  VmMountsTest() {
    mounts_ = {{.source = "/home/u/repo", .target = "/workspace", .readonly = false},
               {.source = "/srv/data", .target = "/data", .readonly = true}};
    mount_owner_ = UserIds{.uid = 4242, .gid = 4343};
    guest_default_ = UserIds{.uid = 1000, .gid = 1001};
  }

  // A golden snapshot whose state the fake QEMU loads, with a memory template.
  GoldenSnapshot Golden() {
    const std::filesystem::path dir = scratch_ / "golden";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "state") << FakeQemu::kStateMagic;
    auto ram = GuestRamMemfd(kRamBytes);
    EXPECT_TRUE(ram) << ram.error().message;
    return GoldenSnapshot{.dir = dir,
                          .state_file = dir / "state",
                          .disk = dir / "disk.qcow2",
                          .memory = std::make_shared<const MemoryTemplate>(std::move(*ram), kRamBytes)};
  }
  static constexpr std::uint64_t kRamBytes = 1 << 20;

  static bool HasArgContaining(const FakeQemu& qemu, const std::string& text) {
    const auto& argv = qemu.launch().argv;
    return std::ranges::any_of(argv, [&](const std::string& arg) { return arg.find(text) != std::string::npos; });
  }
};

TEST_F(VmMountsTest, EachMountGetsAVirtiofsdBeforeQemuAndIsMountedBeforeTheVmRuns) {
  Vm& vm = MakeRunningVm();
  EXPECT_EQ(vm.state(), VmState::kRunning);
  ASSERT_EQ(host_->virtiofsds().size(), 2u);
  EXPECT_EQ(host_->live_virtiofsds(), 2);
  EXPECT_LT(EventIndex("virtiofsd /home/u/repo rw"), EventIndex("launch"));
  EXPECT_LT(EventIndex("virtiofsd /srv/data ro"), EventIndex("launch"));
  // Its socket is in the VM's runtime dir, which names the VM for a later daemon.
  EXPECT_EQ(host_->virtiofsds()[0].socket_path, (vm.paths().runtime_dir / "fs0.sock").string());
  // The guest's default user writes as the mount's owner.
  for (const VirtiofsdLaunch& launch : host_->virtiofsds()) {
    EXPECT_EQ(launch.owner, (UserIds{.uid = 4242, .gid = 4343}));
    EXPECT_EQ(launch.guest_default, (UserIds{.uid = 1000, .gid = 1001}));
  }

  const FakeQemu& qemu = host_->qemu();
  EXPECT_TRUE(HasArgContaining(qemu, "memory-backend-memfd,id=mem0,size=256M,share=on"));
  EXPECT_TRUE(HasArgContaining(qemu, "vhost-user-fs-pci,chardev=fs0,tag=agentvm-fs0"));
  EXPECT_TRUE(HasArgContaining(qemu, "vhost-user-fs-pci,chardev=fs1,tag=agentvm-fs1"));
  EXPECT_EQ(qemu.launch().pass_fds.size(), 5u) << "the console, the QMP and agent listeners and one socket per mount";

  const auto actions = qemu.AgentActions();
  EXPECT_NE(std::ranges::find(actions, "mount agentvm-fs0 /workspace rw"), actions.end());
  EXPECT_NE(std::ranges::find(actions, "mount agentvm-fs1 /data ro"), actions.end());

  const VmInfo info = vm.Info();
  ASSERT_EQ(info.mounts.size(), 2u);
  EXPECT_EQ(info.mounts[1].target, "/data");
  EXPECT_TRUE(info.mounts[1].readonly);
  EXPECT_NE(vm.Record().mounts.find("/home/u/repo"), std::string::npos);
  EXPECT_EQ(info.mount_owner, (UserIds{.uid = 4242, .gid = 4343}));
}

TEST_F(VmMountsTest, QemuDyingTakesItsVirtiofsdsWithIt) {
  MakeRunningVm();
  host_->qemu().Crash(SIGKILL);
  EXPECT_TRUE(RunUntil([&] { return vm_->state() == VmState::kFailed; }));
  EXPECT_EQ(host_->live_virtiofsds(), 0);
}

TEST_F(VmMountsTest, RemoveLeavesNoVirtiofsd) {
  Vm& vm = MakeRunningVm();
  auto removed = Run(vm.Remove());
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(host_->live_virtiofsds(), 0);
}

TEST_F(VmMountsTest, WithoutAMemoryTemplateAGoldenSnapshotIsNotUsedAndTheVmColdBootsSayingWhy) {
  GoldenSnapshot golden = Golden();
  golden.memory.reset();
  Vm& vm = MakeRunningVm(golden);
  EXPECT_EQ(vm.Info().boot, "cold");
  EXPECT_NE(vm.restore_error().find("memory template"), std::string::npos) << vm.restore_error();
  EXPECT_FALSE(host_->qemu().HasArg("-incoming"));
  EXPECT_EQ(host_->live_virtiofsds(), 2);
}

TEST_F(VmMountsTest, ACloneGetsACopyOfTheTemplateSharedAndItsDevicesHotPluggedAfterCont) {
  Vm& vm = MakeRunningVm(Golden());
  EXPECT_EQ(vm.Info().boot, "restore");
  EXPECT_EQ(vm.restore_error(), "");
  const FakeQemu& qemu = host_->qemu();
  // Its RAM: a shared file backend on a memfd of its own, not the template's.
  EXPECT_TRUE(HasArgContaining(qemu, "memory-backend-file,id=pc.ram,size=256M,mem-path=/proc/self/fd/"));
  EXPECT_TRUE(HasArgContaining(qemu, ",share=on"));
  EXPECT_FALSE(HasArgContaining(qemu, "vhost-user-fs-pci")) << "no device on the command line: the state has none";
  EXPECT_TRUE(HasArgContaining(qemu, "pcie-root-port,id=hp7,chassis=8,io-reserve=0"));
  // Virtiofsds before QEMU; the devices after `cont`, into the hot-plug ports;
  // the guest's mounts after them.
  EXPECT_LT(EventIndex("virtiofsd /home/u/repo rw"), EventIndex("launch"));
  const int cont = EventIndex("qmp cont");
  ASSERT_GE(cont, 0);
  EXPECT_LT(cont, EventIndex("device vhost-user-fs-pci agentvm-fs0 in hp0"));
  EXPECT_LT(cont, EventIndex("device vhost-user-fs-pci agentvm-fs1 in hp1"));
  EXPECT_EQ(std::ranges::count(host_->events(), std::string("qmp getfd")), 3) << "the state file and two sockets";
  EXPECT_EQ(std::ranges::count(host_->events(), std::string("qmp chardev-add")), 2);
  const auto actions = qemu.AgentActions();
  EXPECT_NE(std::ranges::find(actions, "mount agentvm-fs0 /workspace rw"), actions.end());
  EXPECT_NE(std::ranges::find(actions, "mount agentvm-fs1 /data ro"), actions.end());
  EXPECT_EQ(host_->live_virtiofsds(), 2);
}

TEST_F(VmMountsTest, AFailedHotPlugColdBootsWithTheReasonAndFreshVirtiofsds) {
  host_->next.device_add_error = "vhost-user-fs: Failed to read msg header";
  GoldenSnapshot golden = Golden();
  Vm& vm = MakeVm();
  auto booted = Run(vm.Boot(golden));
  ASSERT_TRUE(booted) << booted.error().message;
  EXPECT_EQ(vm.Info().boot, "cold");
  EXPECT_NE(vm.restore_error().find("device_add"), std::string::npos) << vm.restore_error();
  EXPECT_NE(vm.restore_error().find("Failed to read msg header"), std::string::npos) << vm.restore_error();
  EXPECT_TRUE(vm.restore_failed_at_mounts()) << "the snapshot is not to blame";
  ASSERT_EQ(host_->launched().size(), 2u);
  EXPECT_TRUE(HasArgContaining(host_->qemu(), "vhost-user-fs-pci,chardev=fs0,tag=agentvm-fs0"));
  EXPECT_EQ(host_->virtiofsds().size(), 4u) << "the restore's two, then the cold boot's own two";
  EXPECT_EQ(host_->live_virtiofsds(), 2);
  auto removed = Run(vm.Remove());
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(host_->live_virtiofsds(), 0);
}

TEST_F(VmMountsTest, AVirtiofsdThatFailsToStartForACloneIsNotTheSnapshotsFault) {
  host_->virtiofsd_error = Error{ErrorCode::kInternal, "no virtiofsd"};
  Vm& vm = MakeVm();
  auto booted = Run(vm.Boot(Golden()));
  ASSERT_FALSE(booted) << "the cold boot after it needs a virtiofsd too";
  EXPECT_NE(vm.restore_error().find("no virtiofsd"), std::string::npos) << vm.restore_error();
  EXPECT_TRUE(vm.restore_failed_at_mounts());
  EXPECT_EQ(host_->live_virtiofsds(), 0);
}

TEST_F(VmMountsTest, ANamedSnapshotIsRefusedWithAConflictSayingWhy) {
  Vm& vm = MakeRunningVm();
  auto saved = Run(vm.SaveSnapshot("before"));
  ASSERT_FALSE(saved);
  EXPECT_EQ(saved.error().code, ErrorCode::kConflict);
  EXPECT_NE(saved.error().message.find("has mounts"), std::string::npos) << saved.error().message;
  EXPECT_TRUE(host_->qemu().snapshots().empty());
}

TEST_F(VmMountsTest, AFailedVirtiofsdStartFailsTheBootAndLeavesNoneRunning) {
  mounts_.push_back({.source = "/x", .target = "/x"});
  host_->virtiofsd_error = Error{ErrorCode::kInternal, "no virtiofsd"};
  Vm& vm = MakeVm();
  auto booted = Run(vm.Boot());
  ASSERT_FALSE(booted);
  EXPECT_NE(booted.error().message.find("no virtiofsd"), std::string::npos) << booted.error().message;
  EXPECT_EQ(vm.state(), VmState::kFailed);
  EXPECT_EQ(host_->live_virtiofsds(), 0);
  EXPECT_FALSE(HasEvent("launch"));
}

}  // namespace
}  // namespace agentvm
