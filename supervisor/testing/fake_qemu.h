// FakeQemu: one QEMU a FakeVmHost "launched", without QEMU. It is
//   - a process whose exit the test controls (Exit, Crash at any moment),
//     dying as a QEMU does: its monitor hangs up, its guest goes with it, and
//     what it printed is in its stderr log;
//   - a monitor (a FakeQmpPeer) answering the QMP commands a Vm sends the way
//     QEMU 7.2 does: stop/cont, powerdown and quit, saving and loading state
//     through a passed fd (`migrate` writes kStateMagic, `migrate-incoming`
//     accepts only a stream that starts with it, and otherwise fails and
//     exits), named snapshot jobs with their events;
//   - a guest behind the control channel: the real agentvm-guest on a
//     socketpair (--fd, with --dry-run-system so "configure" only records
//     what it would do), or one that never answers.
// The guest powering off (the agent exits after "shutdown", or ACPI) ends
// the fake QEMU with status 0, unless behaviour says it hangs instead.
// Unlike a ChildProcess, whose exit status shows once its watcher has reaped
// it, a FakeQemu's shows at once: a Vm must not depend on the difference.
//
// Test-only, header-only; everything runs on the test's io_context thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/spawn.h"
#include "guest-images/agent/testing/agent_harness.h"
#include "qmp/testing/fake_qmp_peer.h"
#include "supervisor/pidfd.h"
#include "supervisor/vm_host.h"

namespace agentvm::testing {

// How the next FakeQemu behaves.
struct FakeQemuBehavior {
  enum class Guest { kAgent, kSilent };
  Guest guest = Guest::kAgent;
  bool greets = true;                        // false: the monitor never answers
  std::optional<ExitStatus> exit_at_launch;  // dies right after it starts
  std::string exit_message;                  // ... printing this to stderr
  bool powers_off = true;                    // false: a power-off request is ignored
  // Non-empty: `device_add` fails with this (as when a virtiofsd is gone).
  std::string device_add_error;
};

class FakeQemu : public std::enable_shared_from_this<FakeQemu> {
 public:
  using json = nlohmann::json;
  // What `migrate` writes and `migrate-incoming` expects.
  static constexpr std::string_view kStateMagic = "FAKE-QEMU-STATE\n";

  FakeQemu(boost::asio::any_io_executor executor, QemuLaunch launch, FakeQemuBehavior behavior, pid_t pid,
           std::string agent_record, std::shared_ptr<std::vector<std::string>> events)
      : executor_(executor),
        launch_(std::move(launch)),
        behavior_(std::move(behavior)),
        pid_(pid),
        agent_record_(std::move(agent_record)),
        events_(std::move(events)),
        exit_timer_(executor, std::chrono::steady_clock::time_point::max()) {
    running_ = !HasArg("defer");  // -incoming defer: paused until a state is loaded
  }
  ~FakeQemu() {
    if (agent_) ::kill(agent_->pid(), SIGKILL);  // ~AgentProcess reaps it
  }

  // Boots the guest; the host calls it once, right after construction.
  Result<void> Start() {
    // Like QEMU, it inherits the console's socket: its own copy.
    for (const std::string& arg : launch_.argv) {
      if (const auto at = arg.find("id=console0,fd="); at != std::string::npos) {
        console_.reset(::fcntl(std::stoi(arg.substr(at + 15)), F_DUPFD_CLOEXEC, 0));
      }
    }
    if (behavior_.guest == FakeQemuBehavior::Guest::kAgent) {
      std::string error;
      agent_ = guest::testing::AgentProcess::Start({"--dry-run-system", agent_record_}, &error);
      if (!agent_) return Fail(ErrorCode::kInternal, "fake guest: " + error);
      guest_end_ = agent_->TakeHostFd();
      const int pidfd = PidfdOpen(agent_->pid());
      if (pidfd < 0) return Fail(ErrorCode::kInternal, "fake guest: pidfd_open failed");
      auto descriptor = std::make_shared<boost::asio::posix::stream_descriptor>(executor_, pidfd);
      SpawnDetached(executor_, WatchAgent(weak_from_this(), std::move(descriptor)), "fake guest watcher");
    } else {
      int ends[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
        return Fail(ErrorCode::kInternal, "fake guest: socketpair failed");
      }
      guest_end_.reset(ends[0]);
      silent_guest_.reset(ends[1]);
    }
    if (behavior_.exit_at_launch) {
      boost::asio::post(executor_, [self = shared_from_this()] {
        self->Exit(*self->behavior_.exit_at_launch, self->behavior_.exit_message);
      });
    }
    return {};
  }

  // --- The test's controls and view.

  // The guest prints `line` on its serial console.
  void WriteConsole(const std::string& line) {
    const std::string text = line + "\n";
    if (console_) (void)!::send(console_.get(), text.data(), text.size(), MSG_NOSIGNAL);
  }

  // QEMU ends now with `status`, having printed `message` to stderr.
  void Exit(ExitStatus status, const std::string& message = "") {
    if (exit_status_) return;
    exit_status_ = status;
    events_->push_back("exit " + status.Describe());
    if (!message.empty()) std::ofstream(launch_.stderr_path, std::ios::app) << message << "\n";
    if (peer_) peer_->Close();
    if (agent_) ::kill(agent_->pid(), SIGKILL);  // the guest dies with its QEMU
    guest_end_.reset();
    silent_guest_.reset();
    console_.reset();
    exit_timer_.cancel();
  }
  void Crash(int signal, const std::string& message = "") { Exit(ExitStatus{.signal = signal}, message); }

  const QemuLaunch& launch() const { return launch_; }
  bool HasArg(std::string_view arg) const { return std::ranges::find(launch_.argv, arg) != launch_.argv.end(); }
  pid_t pid() const { return pid_; }
  const std::optional<ExitStatus>& exit_status() const { return exit_status_; }
  bool exited() const { return exit_status_.has_value(); }
  bool guest_running() const { return running_; }
  // QMP commands received, in order.
  const std::vector<std::string>& commands() const { return commands_; }
  const std::vector<std::string>& snapshots() const { return snapshots_; }
  // What the agent was told to change in its system ("hostname vm-1", ...).
  std::vector<std::string> AgentActions() const {
    std::vector<std::string> lines;
    std::ifstream in(agent_record_);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  // --- What the host hands to the Vm.

  boost::asio::awaitable<ExitStatus> WaitExit() {
    const auto self = shared_from_this();
    while (!exit_status_) {
      boost::system::error_code ec;
      co_await exit_timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
    co_return *exit_status_;
  }

  // A signal ends the process a moment later, as a real one does.
  void Kill(int signal) {
    boost::asio::post(executor_, [self = shared_from_this(), signal] { self->Crash(signal); });
  }

  boost::asio::awaitable<Result<std::unique_ptr<qmp::QmpClient>>> ConnectQmp(std::chrono::milliseconds timeout,
                                                                             std::string vm_id) {
    const auto self = shared_from_this();
    if (exit_status_) co_return Fail(ErrorCode::kUnavailable, "connect to QMP socket: Connection refused");
    auto pair = qmp::testing::MakeClientAndPeer(executor_, std::move(vm_id));
    peer_ = std::move(pair.peer);
    if (behavior_.greets) SpawnDetached(executor_, Serve(), "fake qemu monitor");
    auto shaken = co_await pair.client->Handshake(timeout);
    if (!shaken) co_return Fail(shaken.error().ToError());
    co_return std::move(pair.client);
  }

  Result<GuestSocket> ConnectGuest() {
    if (exit_status_) return Fail(ErrorCode::kUnavailable, "connect to guest: Connection refused");
    if (!guest_end_) return Fail(ErrorCode::kInternal, "fake guest: already connected");
    return GuestSocket(executor_, boost::asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), guest_end_.release());
  }

 private:
  using Peer = qmp::testing::FakeQmpPeer;

  static boost::asio::awaitable<void> WatchAgent(std::weak_ptr<FakeQemu> weak,
                                                 std::shared_ptr<boost::asio::posix::stream_descriptor> pidfd) {
    boost::system::error_code ec;
    co_await pidfd->async_wait(boost::asio::posix::descriptor_base::wait_read,
                               boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    auto self = weak.lock();
    // The agent exits after "shutdown" (its power-off) or when its channel closes.
    if (self && self->behavior_.powers_off) self->Exit(ExitStatus{.code = 0});
  }

  boost::asio::awaitable<void> Serve() {
    const auto self = shared_from_this();
    if (!co_await peer_->ServeHandshake()) co_return;
    for (;;) {
      std::optional<json> command = co_await peer_->ReadMessage();
      if (!command || exit_status_) co_return;
      co_await Answer(std::move(*command));
    }
  }

  // Replies are built into named locals first: g++ 12 mishandles class
  // temporaries inside a co_await expression.
  boost::asio::awaitable<void> Answer(json command) {
    const std::string name = command.value("execute", "");
    const json arguments = command.value("arguments", json::object());
    commands_.push_back(name);
    events_->push_back("qmp " + name);
    json reply = json::object();
    if (name == "stop" || name == "cont") {
      running_ = name == "cont";
    } else if (name == "system_powerdown" || name == "quit") {
      co_await peer_->Reply(command);
      if (name == "quit" || behavior_.powers_off) Exit(ExitStatus{.code = 0});
      co_return;
    } else if (name == "migrate") {
      co_await Save(command);
      co_return;
    } else if (name == "migrate-incoming") {
      co_await Load(command);
      co_return;
    } else if (name == "query-migrate") {
      reply = MigrateInfo(migration_);
    } else if (name == "query-status") {
      reply = RunStatus(running_);
    } else if (name == "query-named-block-nodes") {
      reply = BlockNodes(snapshots_);
    } else if (name == "query-jobs") {
      reply = Jobs();
    } else if (name == "job-dismiss") {
      jobs_.erase(arguments.value("id", ""));
    } else if (name.starts_with("snapshot-")) {
      co_await RunSnapshotJob(command, name, arguments);
      co_return;
    } else if (name == "device_add") {
      if (!behavior_.device_add_error.empty()) {
        std::string what = behavior_.device_add_error;
        co_await peer_->ReplyError(command, "GenericError", std::move(what));
        co_return;
      }
      events_->push_back("device " + arguments.value("driver", "") + " " + arguments.value("tag", "") + " in " +
                         arguments.value("bus", ""));
    } else if (name != "getfd" && name != "closefd" && name != "chardev-add" && !name.starts_with("migrate-set-")) {
      std::string what = "The command " + name + " has not been found";
      co_await peer_->ReplyError(command, "CommandNotFound", std::move(what));
      co_return;
    }
    co_await peer_->Reply(command, std::move(reply));
  }

  // `migrate` to the fd `getfd` passed: the state goes into the caller's file.
  boost::asio::awaitable<void> Save(const json& command) {
    auto& fds = peer_->received_fds();
    const bool written = !fds.empty() && ::write(fds.back().get(), kStateMagic.data(), kStateMagic.size()) ==
                                             static_cast<ssize_t>(kStateMagic.size());
    migration_ = written ? "completed" : "failed";
    co_await peer_->Reply(command);
    co_await SendMigrationEvent();
  }

  // `migrate-incoming` from the passed fd; as QEMU 7.2, a bad stream makes
  // it report the failure and exit.
  boost::asio::awaitable<void> Load(const json& command) {
    if (!HasArg("defer")) {
      std::string what = "'-incoming' was not specified on the command line";
      co_await peer_->ReplyError(command, "GenericError", std::move(what));
      co_return;
    }
    auto& fds = peer_->received_fds();
    std::string head(kStateMagic.size(), '\0');
    const bool good = !fds.empty() &&
                      ::pread(fds.back().get(), head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) &&
                      head == kStateMagic;
    migration_ = good ? "completed" : "failed";
    co_await peer_->Reply(command);
    co_await SendMigrationEvent();
    if (!good) Exit(ExitStatus{.code = 1}, "qemu-system-x86_64: load of migration failed: Invalid argument");
  }

  boost::asio::awaitable<bool> SendMigrationEvent() {
    json data = {{"status", migration_}};
    return peer_->SendEvent("MIGRATION", std::move(data));
  }
  boost::asio::awaitable<bool> SendJobStatus(const std::string& id, const char* status) {
    json data = {{"id", id}, {"status", status}};
    return peer_->SendEvent("JOB_STATUS_CHANGE", std::move(data));
  }

  // As QEMU 7.2 runs a snapshot job: its work before the reply, "concluded" after.
  boost::asio::awaitable<void> RunSnapshotJob(const json& command, const std::string& name, const json& arguments) {
    const std::string id = arguments.value("job-id", "");
    const std::string tag = arguments.value("tag", "");
    co_await SendJobStatus(id, "created");
    if (name == "snapshot-save") snapshots_.push_back(tag);
    if (name == "snapshot-delete") std::erase(snapshots_, tag);
    co_await peer_->Reply(command);
    jobs_[id] = JobEntry(id, name);
    co_await SendJobStatus(id, "concluded");
  }

  json Jobs() const {
    json list = json::array();
    for (const auto& [id, job] : jobs_) list.push_back(job);
    return list;
  }

  // Built outside coroutine bodies: g++ 12 rejects some braced json there.
  static json MigrateInfo(const std::string& status) { return {{"status", status}}; }
  static json RunStatus(bool running) { return {{"running", running}, {"status", running ? "running" : "paused"}}; }
  static json JobEntry(const std::string& id, const std::string& type) {
    return {{"id", id}, {"type", type}, {"status", "concluded"}, {"current-progress", 1}, {"total-progress", 1}};
  }
  static json BlockNodes(const std::vector<std::string>& names) {
    json snapshots = json::array();
    for (const std::string& name : names) {
      snapshots.push_back({{"id", std::to_string(snapshots.size() + 1)}, {"name", name},
                           {"vm-state-size", 98'632'372}, {"date-sec", 1795494724}});
    }
    json image = {{"format", "qcow2"}, {"snapshots", snapshots}};
    return json::array({json{{"node-name", "disk0"}, {"drv", "qcow2"}, {"image", image}}});
  }

  boost::asio::any_io_executor executor_;
  QemuLaunch launch_;
  FakeQemuBehavior behavior_;
  pid_t pid_;
  std::string agent_record_;
  std::shared_ptr<std::vector<std::string>> events_;
  boost::asio::steady_timer exit_timer_;  // never expires; cancelled at exit
  std::optional<ExitStatus> exit_status_;
  std::unique_ptr<Peer> peer_;
  std::unique_ptr<guest::testing::AgentProcess> agent_;
  UniqueFd guest_end_;     // the host's end of the control channel, until connected
  UniqueFd silent_guest_;  // a silent guest's end: open, never read
  UniqueFd console_;       // QEMU's end of the serial console
  bool running_ = true;
  std::string migration_ = "none";
  std::vector<std::string> snapshots_;
  std::map<std::string, json> jobs_;
  std::vector<std::string> commands_;
};

}  // namespace agentvm::testing
