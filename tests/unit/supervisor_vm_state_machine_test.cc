// The Vm's state machine without QEMU: every arrow of vm.h's drawing, driven
// through a FakeVmHost (a fake QEMU whose exit the test controls, a scripted
// QMP monitor, the real agent on a socketpair), and the changes it refuses.
#include <csignal>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/testing/fake_vm_test.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
using testing::FakeQemuBehavior;
using testing::FakeVmTest;
using States = std::vector<std::string>;

TEST(VmTransitionsTest, TheTableIsTheDrawing) {
  // vm.h's drawing, arrow by arrow.
  const std::set<std::pair<VmState, VmState>> drawn = {
      {VmState::kCreating, VmState::kStarting}, {VmState::kStarting, VmState::kRunning},
      {VmState::kRunning, VmState::kStopping},  {VmState::kStopping, VmState::kStopped},
      {VmState::kStarting, VmState::kCreating},  // restore failed: cold boot
      {VmState::kCreating, VmState::kFailed},   {VmState::kStarting, VmState::kFailed},
      {VmState::kRunning, VmState::kFailed},    {VmState::kCreating, VmState::kStopped},
      {VmState::kStarting, VmState::kStopped},  {VmState::kRunning, VmState::kStopped},
  };
  std::set<std::pair<VmState, VmState>> table;
  for (const VmTransition& transition : kVmTransitions) table.insert({transition.from, transition.to});
  EXPECT_EQ(table, drawn);
  const VmState all[] = {VmState::kCreating, VmState::kStarting, VmState::kRunning,
                         VmState::kStopping, VmState::kStopped,  VmState::kFailed};
  for (VmState from : all) {
    for (VmState to : all) EXPECT_EQ(IsVmTransition(from, to), drawn.contains({from, to}));
  }
}

class VmStateMachineTest : public FakeVmTest {};

TEST_F(VmStateMachineTest, BootsToRunningAndStopsWhenTheGuestPowersOff) {
  Vm& vm = MakeRunningVm();
  EXPECT_EQ(states_, (States{"creating", "starting", "running"}));
  const testing::FakeQemu& qemu = host_->qemu();
  EXPECT_EQ(vm.Info().pid, qemu.pid());
  EXPECT_EQ(vm.Info().boot, "cold");
  EXPECT_FALSE(qemu.HasArg("-incoming"));
  EXPECT_TRUE(HasEvent("overlay " + std::filesystem::absolute(vm.image().rootfs).string()));
  EXPECT_LT(EventIndex("connect qmp"), EventIndex("connect guest virtio-serial"));
  // What a jail would have to provide, and nothing of the daemon's own.
  // Isolated: no tap; the console's socket, drained by the daemon, and
  // the listeners QEMU serves QMP and the agent's port on.
  ASSERT_EQ(qemu.launch().pass_fds.size(), 3u);
  EXPECT_TRUE(qemu.HasArg("socket,id=console0,fd=" + std::to_string(qemu.launch().pass_fds[0]) + ",server=off"));
  EXPECT_TRUE(qemu.HasArg("socket,id=qmp0,fd=" + std::to_string(qemu.launch().pass_fds[1]) + ",server=on,wait=off"));
  EXPECT_TRUE(qemu.HasArg("socket,id=agent0,fd=" + std::to_string(qemu.launch().pass_fds[2]) + ",server=on,wait=off"));
  EXPECT_EQ(qemu.launch().writable_paths,
            (std::vector<std::string>{vm.paths().runtime_dir.string(), vm.paths().overlay().string()}));
  EXPECT_EQ(qemu.launch().read_only_paths.size(), 3u);

  auto stopped = Run(vm.Stop());
  ASSERT_TRUE(stopped) << stopped.error().message;
  EXPECT_EQ(states_, (States{"creating", "starting", "running", "stopping", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "stopped by request");
  EXPECT_FALSE(vm.Info().pid);
  // The agent powered the guest off: QEMU ended by itself, it was not killed.
  ASSERT_TRUE(qemu.exit_status());
  EXPECT_EQ(qemu.exit_status()->code, 0);
}

TEST_F(VmStateMachineTest, FailsInCreatingWhenTheOverlayCannotBeMade) {
  host_->overlay_error = Error{ErrorCode::kInternal, "qemu-img: Could not open backing file"};
  Vm& vm = MakeVm();
  auto booted = Run(vm.Boot());
  ASSERT_FALSE(booted);
  EXPECT_EQ(states_, (States{"creating", "failed"}));
  EXPECT_EQ(vm.Info().reason, "create overlay: qemu-img: Could not open backing file");
  EXPECT_TRUE(host_->launched().empty());
}

TEST_F(VmStateMachineTest, FailsInStartingWhenQemuExitsAtLaunch) {
  host_->next.exit_at_launch = ExitStatus{.code = 1};
  host_->next.exit_message = "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory";
  Vm& vm = MakeVm();
  auto booted = Run(vm.Boot());
  ASSERT_FALSE(booted);
  EXPECT_EQ(states_, (States{"creating", "starting", "failed"}));
  EXPECT_EQ(vm.Info().reason,
            "qemu exited with status 1: qemu-system-x86_64: -accel kvm: failed to initialize kvm: "
            "No such file or directory");
  EXPECT_NE(booted.error().message.find(vm.Info().reason), std::string::npos) << booted.error().message;
}

TEST_F(VmStateMachineTest, FailsInStartingAndKillsQemuWhenQmpNeverAnswers) {
  host_->next.greets = false;
  context_.qmp_timeout = 300ms;
  Vm& vm = MakeVm();
  auto booted = Run(vm.Boot());
  ASSERT_FALSE(booted);
  EXPECT_EQ(states_, (States{"creating", "starting", "failed"}));
  EXPECT_TRUE(vm.Info().reason.starts_with("connect to QMP: ")) << vm.Info().reason;
  ASSERT_TRUE(host_->qemu().exit_status());
  EXPECT_EQ(host_->qemu().exit_status()->signal, SIGKILL);  // never left running
}

TEST_F(VmStateMachineTest, FailsInStartingWhenTheAgentNeverAnswers) {
  host_->next.guest = FakeQemuBehavior::Guest::kSilent;
  context_.agent_timeout = 600ms;
  Vm& vm = MakeVm();
  const auto start = Clock::now();
  auto booted = Start(vm.Boot());
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kStarting; }));
  WriteConsole("Run /init as init process");
  ASSERT_TRUE(RunUntil([&] { return booted->has_value(); }));
  EXPECT_GE(Clock::now() - start, 600ms);
  ASSERT_FALSE(**booted);
  EXPECT_EQ(states_, (States{"creating", "starting", "failed"}));
  EXPECT_TRUE(vm.Info().reason.starts_with("guest agent did not answer within")) << vm.Info().reason;
  EXPECT_NE(vm.Info().reason.find("'Run /init as init process'"), std::string::npos) << vm.Info().reason;
  EXPECT_EQ(host_->qemu().exit_status()->signal, SIGKILL);
}

TEST_F(VmStateMachineTest, FailsWhenQemuCrashesWhileRunning) {
  Vm& vm = MakeRunningVm();
  host_->qemu().Crash(SIGSEGV);
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kFailed; }));
  EXPECT_EQ(states_, (States{"creating", "starting", "running", "failed"}));
  EXPECT_EQ(vm.Info().reason, "qemu killed by signal 11 (Segmentation fault)");
  // Nothing reaches a dead guest any more.
  auto exec = Run(vm.Exec({.argv = {"true"}}, [](protocol::OutputStream, std::string_view) {}));
  ASSERT_FALSE(exec);
  EXPECT_EQ(exec.error().code, ErrorCode::kConflict);
}

TEST_F(VmStateMachineTest, AKernelPanicIsTheReasonWhenTheGuestDies) {
  Vm& vm = MakeRunningVm();
  WriteConsole("[    4.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
  WriteConsole("[    4.3] ---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100 ]---");
  WriteConsole("[    4.4] reboot: Restarting system");
  host_->qemu().Exit(ExitStatus{.code = 0});  // -no-reboot: the panic ends QEMU
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kFailed; }));
  EXPECT_EQ(vm.Info().reason,
            "qemu exited with status 0: [    4.3] ---[ end Kernel panic - not syncing: Attempted to kill init! "
            "exitcode=0x00000100 ]---");
}

TEST_F(VmStateMachineTest, QemuDyingDuringAStopIsAStop) {
  host_->next.powers_off = false;  // the stop waits out stop_grace...
  Vm& vm = MakeRunningVm();
  const auto start = Clock::now();
  auto stopped = Start(vm.Stop());
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kStopping; }));
  host_->qemu().Crash(SIGABRT, "qemu-system-x86_64: block.c:1234: assertion failed");  // ... unless QEMU dies
  ASSERT_TRUE(RunUntil([&] { return stopped->has_value(); }));
  EXPECT_LT(Clock::now() - start, context_.stop_grace);
  EXPECT_TRUE(**stopped);
  EXPECT_EQ(states_, (States{"creating", "starting", "running", "stopping", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "stopped by request");
}

TEST_F(VmStateMachineTest, KillWhileCreatingStopsTheBootBeforeQemu) {
  host_->overlay_time = 200ms;
  Vm& vm = MakeVm();
  auto booted = Start(vm.Boot());
  ASSERT_TRUE(RunUntil([&] { return host_->overlays_started() == 1; }));
  Run(vm.Kill("killed by test"));
  ASSERT_TRUE(RunUntil([&] { return booted->has_value(); }));
  EXPECT_FALSE(**booted);
  EXPECT_EQ(states_, (States{"creating", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "killed by test");
  EXPECT_TRUE(host_->launched().empty());
}

TEST_F(VmStateMachineTest, KillWhileStartingEndsQemuAndTheBoot) {
  host_->next.guest = FakeQemuBehavior::Guest::kSilent;
  Vm& vm = MakeVm();
  auto booted = Start(vm.Boot());
  ASSERT_TRUE(RunUntil([&] { return HasEvent("connect guest virtio-serial"); }));
  const auto start = Clock::now();
  Run(vm.Kill("killed by test"));
  ASSERT_TRUE(RunUntil([&] { return booted->has_value(); }));
  EXPECT_LT(Clock::now() - start, 2s);  // not the agent timeout
  EXPECT_FALSE(**booted);
  EXPECT_EQ(states_, (States{"creating", "starting", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "killed by test");
  EXPECT_EQ(host_->qemu().exit_status()->signal, SIGKILL);
}

TEST_F(VmStateMachineTest, KillWhileRunningStops) {
  Vm& vm = MakeRunningVm();
  Run(vm.Kill("killed by test"));
  EXPECT_EQ(states_, (States{"creating", "starting", "running", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "killed by test");
  EXPECT_EQ(host_->qemu().exit_status()->signal, SIGKILL);
}

TEST_F(VmStateMachineTest, KillWhileStoppingKeepsTheStopsReason) {
  host_->next.powers_off = false;
  Vm& vm = MakeRunningVm();
  auto stopped = Start(vm.Stop());
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kStopping; }));
  Run(vm.Kill("killed by test"));
  ASSERT_TRUE(RunUntil([&] { return stopped->has_value(); }));
  EXPECT_TRUE(**stopped);
  EXPECT_EQ(states_, (States{"creating", "starting", "running", "stopping", "stopped"}));
  EXPECT_EQ(vm.Info().reason, "stopped by request");
}

TEST_F(VmStateMachineTest, KillLeavesAStoppedOrFailedVmAsItIs) {
  Vm& vm = MakeRunningVm();
  host_->qemu().Crash(SIGSEGV);
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kFailed; }));
  const States before = states_;
  Run(vm.Kill("killed by test"));
  EXPECT_EQ(vm.state(), VmState::kFailed);
  EXPECT_EQ(vm.Info().reason, "qemu killed by signal 11 (Segmentation fault)");
  EXPECT_EQ(states_, before);
}

TEST_F(VmStateMachineTest, RefusesWhatTheDrawingDoesNotHave) {
  Vm& vm = MakeVm();
  Run(vm.Kill("killed by test"));  // creating -> stopped
  const States before = states_;
  // stopped -> stopping, stopped -> creating: no such arrows.
  auto stop = Run(vm.Stop());
  ASSERT_FALSE(stop);
  EXPECT_EQ(stop.error().code, ErrorCode::kConflict);
  EXPECT_EQ(stop.error().message, std::string("vm ") + kVmId + " is stopped");
  auto boot = Run(vm.Boot());
  ASSERT_FALSE(boot);
  EXPECT_EQ(boot.error().code, ErrorCode::kConflict);
  EXPECT_EQ(vm.state(), VmState::kStopped);
  EXPECT_EQ(vm.Info().reason, "killed by test");
  EXPECT_EQ(states_, before);
  EXPECT_TRUE(host_->launched().empty());
}

TEST_F(VmStateMachineTest, ASecondBootLeavesTheRunningVmAlone) {
  Vm& vm = MakeRunningVm();
  auto again = Run(vm.Boot());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_EQ(vm.state(), VmState::kRunning);
  EXPECT_EQ(host_->launched().size(), 1u);
  EXPECT_FALSE(host_->qemu().exited());
}

TEST_F(VmStateMachineTest, RemoveDeletesTheVmsFiles) {
  Vm& vm = MakeRunningVm();
  ASSERT_TRUE(std::filesystem::exists(vm.paths().overlay()));
  auto removed = Run(vm.Remove());
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(vm.state(), VmState::kStopped);
  EXPECT_EQ(vm.Info().reason, "removed");
  EXPECT_FALSE(std::filesystem::exists(vm.paths().runtime_dir));
  EXPECT_FALSE(std::filesystem::exists(vm.paths().disk_dir));
}

TEST_F(VmStateMachineTest, RemoveWaitsForABootInProgressToGiveUp) {
  host_->next.guest = FakeQemuBehavior::Guest::kSilent;
  Vm& vm = MakeVm();
  auto booted = Start(vm.Boot());
  ASSERT_TRUE(RunUntil([&] { return vm.state() == VmState::kStarting; }));
  auto removed = Run(vm.Remove());
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(booted->has_value());  // the boot ended before the files went
  EXPECT_EQ(states_, (States{"creating", "starting", "stopped"}));
  EXPECT_FALSE(std::filesystem::exists(vm.paths().disk_dir));
}

TEST_F(VmStateMachineTest, RunsCommandsAndMovesFilesThroughTheAgent) {
  Vm& vm = MakeRunningVm();
  std::string out, err;
  protocol::OutputSink sink = [&](protocol::OutputStream stream, std::string_view data) {
    (stream == protocol::OutputStream::kStdout ? out : err).append(data);
  };
  auto result = Run(vm.Exec({.argv = {"sh", "-c", "echo out; echo err >&2; exit 7"}}, sink));
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->exit_code, 7);
  EXPECT_EQ(out, "out\n");
  EXPECT_EQ(err, "err\n");

  const std::string path = (scratch_ / "through-the-agent").string();
  ASSERT_TRUE(Run(vm.WriteFileChunk(path, "hello", 0, true, 0600)));
  ASSERT_TRUE(Run(vm.WriteFileChunk(path, " world", 5, false, 0600)));
  auto read = Run(vm.ReadFileChunk(path, 0));
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->data, "hello world");
  EXPECT_EQ(read->info.mode, 0600u);
  EXPECT_TRUE(read->info.eof);
  EXPECT_TRUE(Run(vm.Ping(1s)));
}

}  // namespace
}  // namespace agentvm
