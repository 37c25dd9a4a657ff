// FakeVmHost: a VmHost for unit tests. Overlays are plain files (or fail, or
// take a while, as the test says); every launch is a FakeQemu
// (fake_qemu.h) behaving as `next` says, which the test then drives: crash
// it, look at what the Vm asked of it. QMP and the guest connect to the
// QEMU launched last, as a Vm only ever talks to its current one.
//
// Test-only, header-only; everything runs on the test's io_context thread.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "qmp/qmp_client.h"
#include "supervisor/testing/fake_qemu.h"
#include "supervisor/vm_host.h"

namespace agentvm::testing {

class FakeVmHost final : public VmHost {
 public:
  // Fake pids start here: high enough to be no process of the test machine
  // (nothing signals them; they only show in Info()).
  static constexpr pid_t kFirstPid = 4'000'000;

  // The agents' records of what they would have changed go into `scratch`.
  FakeVmHost(boost::asio::any_io_executor executor, std::filesystem::path scratch)
      : executor_(std::move(executor)), scratch_(std::move(scratch)) {}

  // --- What the next calls do.
  FakeQemuBehavior next;               // every launch from now on
  std::optional<Error> overlay_error;  // CreateOverlay fails with this
  std::chrono::milliseconds overlay_time{0};
  std::optional<Error> launch_error;  // LaunchQemu fails with this
  std::optional<Error> virtiofsd_error;  // LaunchVirtiofsd fails with this

  // --- What happened.
  // "overlay <backing>", "launch", "connect qmp", "connect guest <channel>",
  // and from each QEMU "qmp <command>" and "exit <how>", in order.
  const std::vector<std::string>& events() const { return *events_; }
  const std::vector<std::shared_ptr<FakeQemu>>& launched() const { return launched_; }
  FakeQemu& qemu() { return *launched_.back(); }  // the last one
  int overlays_started() const { return overlays_started_; }
  // virtiofsds launched, and of them the ones not yet dropped by their Vm.
  const std::vector<VirtiofsdLaunch>& virtiofsds() const { return virtiofsds_; }
  int live_virtiofsds() const { return *live_virtiofsds_; }

  // --- VmHost.
  boost::asio::awaitable<Result<void>> CreateOverlay(std::string backing, std::uint64_t /*size_bytes*/,
                                                     std::string overlay, std::string log_path) override {
    ++overlays_started_;
    events_->push_back("overlay " + backing);
    if (overlay_time.count() > 0) {
      boost::asio::steady_timer busy(executor_, overlay_time);
      boost::system::error_code ec;
      co_await busy.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    if (overlay_error) {
      std::ofstream(log_path, std::ios::app) << overlay_error->message << "\n";
      co_return Fail(*overlay_error);
    }
    std::ofstream(overlay) << "fake qcow2 over " << backing << "\n";
    co_return Result<void>{};
  }

  boost::asio::awaitable<Result<std::unique_ptr<QemuProcess>>> LaunchQemu(QemuLaunch launch) override {
    events_->push_back("launch");
    if (launch_error) co_return Fail(*launch_error);
    const pid_t pid = kFirstPid + static_cast<pid_t>(launched_.size());
    const std::string record = (scratch_ / ("agent-" + std::to_string(launched_.size()) + ".log")).string();
    auto qemu = std::make_shared<FakeQemu>(executor_, std::move(launch), next, pid, record, events_);
    if (auto started = qemu->Start(); !started) co_return Fail(started.error());
    launched_.push_back(qemu);
    std::unique_ptr<QemuProcess> process = std::make_unique<Process>(std::move(qemu));
    co_return std::move(process);
  }

  Result<StartedVirtiofsd> LaunchVirtiofsd(VirtiofsdLaunch launch) override {
    events_->push_back("virtiofsd " + launch.source + (launch.readonly ? " ro" : " rw"));
    virtiofsds_.push_back(launch);
    if (virtiofsd_error) return Fail(*virtiofsd_error);
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      return Fail(ErrnoError("fake virtiofsd: socketpair", errno));
    }
    ::close(pair[1]);
    const pid_t pid = kFirstVirtiofsdPid + static_cast<pid_t>(virtiofsds_.size());
    return StartedVirtiofsd{.process = std::make_unique<Virtiofsd>(pid, live_virtiofsds_), .qemu_end = UniqueFd(pair[0])};
  }

  boost::asio::awaitable<Result<std::unique_ptr<qmp::QmpClient>>> ConnectQmp(std::string socket_path,
                                                                             std::chrono::milliseconds timeout,
                                                                             std::string vm_id) override {
    events_->push_back("connect qmp");
    if (launched_.empty()) co_return Fail(ErrorCode::kUnavailable, "connect to " + socket_path + ": no QEMU");
    const std::shared_ptr<FakeQemu> qemu = launched_.back();
    co_return co_await qemu->ConnectQmp(timeout, std::move(vm_id));
  }

  boost::asio::awaitable<Result<GuestSocket>> ConnectGuest(GuestAddress address,
                                                           std::chrono::milliseconds /*timeout*/) override {
    events_->push_back("connect guest " + std::string(ChannelKindName(address.channel)));
    if (launched_.empty()) co_return Fail(ErrorCode::kUnavailable, "connect to guest: no QEMU");
    co_return launched_.back()->ConnectGuest();
  }

 private:
  static constexpr pid_t kFirstVirtiofsdPid = 4'100'000;

  // Counts itself live from launch until its owner drops it.
  class Virtiofsd final : public VirtiofsdProcess {
   public:
    Virtiofsd(pid_t pid, std::shared_ptr<int> live) : pid_(pid), live_(std::move(live)) { ++*live_; }
    ~Virtiofsd() override { --*live_; }
    pid_t pid() const override { return pid_; }

   private:
    pid_t pid_;
    std::shared_ptr<int> live_;
  };

  // The Vm's handle on a FakeQemu; like a ChildProcess, dropping it while
  // QEMU runs kills it.
  class Process final : public QemuProcess {
   public:
    explicit Process(std::shared_ptr<FakeQemu> qemu) : qemu_(std::move(qemu)) {}
    ~Process() override { qemu_->Crash(SIGKILL); }
    pid_t pid() const override { return qemu_->pid(); }
    const std::optional<ExitStatus>& exit_status() const override { return qemu_->exit_status(); }
    boost::asio::awaitable<ExitStatus> WaitExit() override { return qemu_->WaitExit(); }
    void Kill(int signal) override { qemu_->Kill(signal); }

   private:
    std::shared_ptr<FakeQemu> qemu_;
  };

  boost::asio::any_io_executor executor_;
  std::filesystem::path scratch_;
  std::shared_ptr<std::vector<std::string>> events_ = std::make_shared<std::vector<std::string>>();
  std::vector<std::shared_ptr<FakeQemu>> launched_;
  int overlays_started_ = 0;
  std::vector<VirtiofsdLaunch> virtiofsds_;
  std::shared_ptr<int> live_virtiofsds_ = std::make_shared<int>(0);
};

}  // namespace agentvm::testing
