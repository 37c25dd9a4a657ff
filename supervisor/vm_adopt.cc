// Vm::Adopt: a restarted daemon takes over a VM whose QEMU outlived the
// daemon that launched it (docs/operations.md, "What survives a restart").
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/spawn.h"
#include "qmp/qmp_client.h"
#include "supervisor/guest_channel.h"
#include "supervisor/vm.h"
#include "supervisor/vm_network.h"

namespace agentvm {
namespace {

using std::chrono::milliseconds;

std::shared_ptr<spdlog::logger> Log() { return Logger("vm"); }

// QemuCommandLine names the serial chardev so.
constexpr char kConsoleChardev[] = "console0";
constexpr char kConsoleFdName[] = "agentvm-console";

}  // namespace

boost::asio::awaitable<Result<void>> Vm::Adopt(std::unique_ptr<QemuProcess> qemu,
                                               std::unique_ptr<NetAttachment> network, std::string note) {
  const auto self = shared_from_this();
  if (booting_ || state_ != VmState::kStarting || qemu_) co_return Fail(StateConflict());
  booting_ = true;
  qemu_ = std::move(qemu);
  network_ = std::move(network);
  SpawnDetached(context_.executor, WatchQemu(self, qemu_.get()), "qemu watcher of " + spec_.id);
  Result<void> adopted = co_await AdoptSteps(std::move(note));
  booting_ = false;
  up_since_ = std::chrono::steady_clock::now();
  WakeWaiters();
  if (adopted) co_return adopted;
  if (IsVmTransition(state_, VmState::kFailed)) {
    SetState(VmState::kFailed, "not adopted after an agentvmd restart: " + adopted.error().message);
  }
  co_await Kill("adoption failed");
  co_return Fail(adopted.error().code, "adopt " + spec_.id + ": " + reason_);
}

boost::asio::awaitable<Result<void>> Vm::AdoptSteps(std::string note) {
  const auto deadline = std::chrono::steady_clock::now() + context_.agent_timeout;
  auto remaining = [&] {
    return std::max(milliseconds(1),
                    std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()));
  };
  std::string qmp_socket = spec_.paths.qmp_socket().string();
  std::string vm_id = spec_.id;
  auto qmp = co_await context_.host->ConnectQmp(std::move(qmp_socket), context_.qmp_timeout, std::move(vm_id));
  if (!qemu_running()) co_return Fail(ErrorCode::kUnavailable, ExitReason());
  if (!qmp) co_return Fail(qmp.error().Wrap("connect to QMP"));
  qmp_ = std::move(*qmp);
  if (auto console = co_await ReconnectConsole(); !console) co_return console;
  if (auto connected = co_await ConnectAgent(remaining()); !connected) co_return connected;
  auto ready = co_await channel_->WaitReady(remaining());
  if (!qemu_running()) co_return Fail(ErrorCode::kUnavailable, ExitReason());
  if (!ready) co_return Fail(ready.error().Wrap("guest agent"));
  if (!SetState(VmState::kRunning, std::move(note))) co_return Fail(StateConflict());
  co_return Result<void>{};
}

boost::asio::awaitable<Result<void>> Vm::ReconnectConsole() {
  // What the earlier daemon wrote stays readable as the older half.
  std::error_code ec;
  std::filesystem::rename(spec_.paths.console_log(), ConsoleLog::Rotated(spec_.paths.console_log()), ec);
  console_ = std::make_unique<ConsoleLog>(context_.executor, spec_.paths.console_log(), spec_.id,
                                          context_.console_ring_bytes, context_.console_file_bytes);
  auto end = console_->Connect();
  if (!end) co_return Fail(end.error().Wrap("console"));
  nlohmann::json getfd = {{"fdname", kConsoleFdName}};
  auto passed = co_await qmp_->ExecuteWithFd("getfd", std::move(getfd), end->get());
  if (!passed) co_return Fail(passed.error().ToError().Wrap("console: getfd"));
  nlohmann::json change = {
      {"id", kConsoleChardev},
      {"backend",
       {{"type", "socket"},
        {"data", {{"addr", {{"type", "fd"}, {"data", {{"str", kConsoleFdName}}}}}, {"server", false}}}}}};
  auto changed = co_await qmp_->Execute("chardev-change", std::move(change));
  if (!changed) co_return Fail(changed.error().ToError().Wrap("console: chardev-change"));
  Log()->info("{}: console reconnected", spec_.id);
  co_return Result<void>{};
}

}  // namespace agentvm
