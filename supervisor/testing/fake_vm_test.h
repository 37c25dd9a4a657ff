// FakeVmTest: the fixture of the Vm's unit tests. One Vm on a FakeVmHost,
// its files in a scratch directory, its timeouts short; every state it
// announces is recorded, and after each test every step between two of them
// must be an arrow of vm.h's drawing, and no fake QEMU may still run.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "supervisor/testing/fake_vm_host.h"
#include "supervisor/vm.h"
#include "supervisor/vm_network.h"
#include "tests/support/coroutine_runner.h"

namespace agentvm::testing {

class FakeVmTest : public ::testing::Test {
 protected:
  using Clock = std::chrono::steady_clock;
  static constexpr char kVmId[] = "vm-0123456789ab";

  FakeVmTest() {
    std::string pattern = (std::filesystem::temp_directory_path() / "agentvm-vm-test-XXXXXX").string();
    scratch_ = ::mkdtemp(pattern.data()) ? pattern : "";
    host_ = std::make_shared<FakeVmHost>(io_.get_executor(), scratch_);
    context_ = VmContext{
        .executor = io_.get_executor(),
        .host = host_,
        .agent_timeout = std::chrono::seconds(10),
        .qmp_timeout = std::chrono::seconds(2),
        .stop_grace = std::chrono::seconds(10),
        .on_change = [this](const VmRecord& record) { states_.push_back(record.state); },
    };
  }

  void TearDown() override {
    if (vm_) {
      Run(vm_->Kill("test over"));
      vm_.reset();
    }
    // Nothing may stay running: the watchers see their QEMU gone.
    runner_.RunFor(std::chrono::milliseconds(20));
    for (const auto& qemu : host_->launched()) EXPECT_TRUE(qemu->exited()) << "a fake QEMU still runs";
    for (std::size_t i = 1; i < states_.size(); ++i) {
      const auto from = VmStateFromName(states_[i - 1]);
      const auto to = VmStateFromName(states_[i]);
      EXPECT_TRUE(from && to && IsVmTransition(*from, *to))
          << "announced " << states_[i - 1] << " -> " << states_[i] << ", which vm.h does not draw";
    }
    std::error_code ec;
    std::filesystem::remove_all(scratch_, ec);
  }

  // The Vm under test, made with the context as the test has set it.
  Vm& MakeVm() {
    const std::filesystem::path image = scratch_ / "image";
    VmSpec spec{.id = kVmId,
                .image = Image{.name = "tiny",
                               .kernel = image / "vmlinuz",
                               .initrd = image / "initrd.img",
                               .rootfs = image / "rootfs.qcow2",
                               .kernel_args = "console=ttyS0",
                               .default_uid = guest_default_.uid,
                               .default_gid = guest_default_.gid},
                .paths = VmPaths::For((scratch_ / "run").string(), (scratch_ / "state").string(), kVmId),
                .mounts = mounts_,
                .mount_owner = mount_owner_};
    vm_ = std::make_shared<Vm>(context_, std::move(spec), nullptr);
    return *vm_;
  }

  // MakeVm(), then a boot that must succeed.
  Vm& MakeRunningVm(std::optional<GoldenSnapshot> golden = std::nullopt) {
    Vm& vm = MakeVm();
    auto booted = Run(vm.Boot(std::move(golden)));
    EXPECT_TRUE(booted) << booted.error().message;
    return vm;
  }

  template <class T>
  T Run(boost::asio::awaitable<T> task) {
    return runner_.Run(std::move(task));
  }
  void Run(boost::asio::awaitable<void> task) { runner_.Run(Done(std::move(task))); }
  // Starts `task` and returns its slot; the test runs the io_context on.
  template <class T>
  std::shared_ptr<std::optional<T>> Start(boost::asio::awaitable<T> task) {
    return runner_.Spawn(std::move(task));
  }
  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(10)) {
    runner_.RunUntil(done, limit);
    return done();
  }
  bool HasEvent(const std::string& event) const {
    return std::ranges::find(host_->events(), event) != host_->events().end();
  }
  // The position of `event` among the host's events; -1 if it is not there.
  int EventIndex(const std::string& event) const {
    const auto& events = host_->events();
    const auto it = std::ranges::find(events, event);
    return it == events.end() ? -1 : static_cast<int>(it - events.begin());
  }
  // The latest QEMU's guest prints `line`; returns once the Vm has it.
  void WriteConsole(const std::string& line) {
    host_->launched().back()->WriteConsole(line);
    runner_.RunUntil([&] { return vm_->Console(1 << 20)->find(line) != std::string::npos; },
                     std::chrono::seconds(5));
  }

  static boost::asio::awaitable<bool> Done(boost::asio::awaitable<void> task) {
    co_await std::move(task);
    co_return true;
  }

  boost::asio::io_context io_;
  CoroutineRunner runner_{io_};
  std::filesystem::path scratch_;
  std::shared_ptr<FakeVmHost> host_;
  VmContext context_;
  std::shared_ptr<Vm> vm_;
  std::vector<VmMount> mounts_;  // what MakeVm gives the Vm to share
  std::optional<UserIds> mount_owner_;
  UserIds guest_default_;  // the image's default user (root)
  std::vector<std::string> states_;  // every state the Vm announced, in order
};

}  // namespace agentvm::testing
