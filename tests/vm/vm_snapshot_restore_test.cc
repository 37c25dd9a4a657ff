// Save and restore with real QEMU (TCG) and the tiny image, through the
// supervisor's own pieces (QemuCommandLine, SaveState/LoadState, QmpClient,
// GuestChannel) but without agentvmd: boot once, write files, save, freeze
// the disk; then restore clones on fresh overlays over the frozen disk and
// check the guest kept running where it stopped. One boot for the whole file.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "qmp/qmp_client.h"
#include "qmp/testing/coroutine_test.h"
#include "supervisor/child_process.h"
#include "supervisor/golden_snapshot_store.h"
#include "supervisor/guest_channel.h"
#include "supervisor/guest_connector.h"
#include "supervisor/image_store.h"
#include "qmp/migration.h"
#include "supervisor/qemu_command_line.h"
#include "supervisor/vm_host.h"
#include "tests/support/files.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using boost::asio::awaitable;
using qmp::testing::CoroutineRunner;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

long Ms(Clock::duration d) { return static_cast<long>(std::chrono::duration_cast<milliseconds>(d).count()); }

QemuLaunchSpec SpecIn(const fs::path& dir, const std::string& id) {
  auto image = ImageStore(ImageDir()).Find("tiny");
  if (!image) {
    ADD_FAILURE() << image.error().message;
    return {};
  }
  return QemuLaunchSpec{
      .vm_id = id,
      .accel = Accel::kTcg,
      .cpus = 1,
      .memory_mib = 256,
      .kernel = image->kernel.string(),
      .initrd = image->initrd.string(),
      .kernel_args = image->kernel_args + " agentvm.channel=serial agentvm.hostname=" + id,
      .base_image = fs::absolute(image->rootfs).string(),
      .overlay = (dir / "overlay.qcow2").string(),
      .console_log = (dir / "console.log").string(),
      .pidfile = (dir / "qemu.pid").string(),
      .channel = ChannelKind::kVirtioSerial,
  };
}

// One QEMU and what talks to it; everything dies with it.
struct Machine {
  std::unique_ptr<ChildProcess> qemu;
  std::unique_ptr<qmp::QmpClient> qmp;
  std::unique_ptr<GuestChannel> agent;
};

// Every file of the test's VM in one directory, beside the overlay.
VmPaths PathsOf(const QemuLaunchSpec& spec) {
  const fs::path dir = fs::path(spec.overlay).parent_path();
  return VmPaths{.runtime_dir = dir, .disk_dir = dir};
}

// Creates the overlay on `backing`, starts QEMU and connects QMP.
awaitable<Result<Machine>> Start(QemuLaunchSpec spec, const std::string& backing) {
  auto executor = co_await boost::asio::this_coro::executor;
  const fs::path dir = fs::path(spec.overlay).parent_path();
  auto listeners = ListenForQemu(PathsOf(spec), spec);
  if (!listeners) co_return Fail(listeners.error());
  std::vector<std::string> create = {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                                     "-b", backing, spec.overlay};
  auto created = co_await RunToCompletion(executor, create, (dir / "qemu-img.log").string());
  if (!created) co_return Fail(created.error());
  Machine machine;
  LaunchSpec launch{.argv = QemuCommandLine(spec),
                    .stderr_path = (dir / "qemu.log").string(),
                    .pass_fds = {spec.qmp_fd, spec.agent_fd}};
  auto launched = ChildProcess::Launch(executor, launch);
  if (!launched) co_return Fail(launched.error());
  machine.qemu = std::move(*launched);
  auto qmp = co_await qmp::QmpClient::Connect(executor, PathsOf(spec).qmp_socket().string(), 10s, spec.vm_id);
  if (!qmp) co_return Fail(qmp.error().ToError());
  machine.qmp = std::move(*qmp);
  co_return std::move(machine);
}

awaitable<Result<void>> ConnectAgent(Machine& machine, const QemuLaunchSpec& spec) {
  auto socket = co_await ConnectGuestUnix(PathsOf(spec).agent_socket().string(), 10s);
  if (!socket) co_return Fail(socket.error());
  machine.agent = std::make_unique<GuestChannel>(std::move(*socket), spec.vm_id);
  machine.agent->Start();
  co_return Result<void>{};
}

// stdout of `sh -c command` in the guest; an error for a non-zero exit.
awaitable<Result<std::string>> GuestSh(GuestChannel& agent, std::string command) {
  auto out = std::make_shared<std::string>();
  protocol::ExecRequest request{.argv = {"sh", "-c", std::move(command)}, .timeout = 20s};
  protocol::OutputSink sink = [out](protocol::OutputStream stream, std::string_view data) {
    if (stream == protocol::OutputStream::kStdout) out->append(data);
  };
  auto result = co_await agent.Exec(request, sink);
  if (!result) co_return Fail(result.error());
  if (result->ShellStatus() != 0) {
    co_return Fail(ErrorCode::kInternal, "exit status " + std::to_string(result->ShellStatus()));
  }
  co_return *out;
}

UniqueFd OpenFile(const fs::path& path, int flags) {
  return UniqueFd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
}

// Boots the one VM of this file and saves it; every test restores from it.
class VmSnapshotRestoreTest : public ::testing::Test {
 protected:
  struct Golden {
    TempDir dir{"avm-snap"};
    fs::path state;
    fs::path disk;  // frozen
    std::string boot_id;
    Clock::duration cold_boot{};
    Clock::duration save{};
    std::string error;  // why there is no golden state
  };

  static void SetUpTestSuite() {
    golden_ = new Golden;
    Golden& g = *golden_;
    const fs::path boot_dir = g.dir.path() / "boot";
    fs::create_directories(boot_dir);
    const QemuLaunchSpec spec = SpecIn(boot_dir, "vm-golden");
    g.state = g.dir.path() / "state";
    g.disk = g.dir.path() / "disk.qcow2";

    CoroutineRunner runner;
    runner.Spawn([&]() -> awaitable<void> {
      const auto start = Clock::now();
      auto machine = co_await Start(spec, spec.base_image);
      if (!machine) {
        g.error = "start: " + machine.error().message;
        co_return;
      }
      if (auto agent = co_await ConnectAgent(*machine, spec); !agent) {
        g.error = agent.error().message;
        co_return;
      }
      if (auto ready = co_await machine->agent->WaitReady(120s); !ready) {
        g.error = "agent: " + ready.error().message + "\nconsole:\n" + ReadFile(spec.console_log);
        co_return;
      }
      g.cold_boot = Clock::now() - start;
      GuestChannel& agent = *machine->agent;
      auto boot_id = co_await GuestSh(agent, "cat /proc/sys/kernel/random/boot_id");
      auto synced = co_await agent.WriteFile("/golden-synced", "on the frozen disk\n", 0644);
      auto sync = co_await GuestSh(agent, "sync");
      // Not synced: likely only in the page cache, i.e. in the memory state.
      auto dirty = co_await agent.WriteFile("/golden-dirty", "only in memory\n", 0644);
      if (!boot_id || !synced || !sync || !dirty) {
        g.error = "preparing the guest failed";
        co_return;
      }
      g.boot_id = *boot_id;

      UniqueFd out = OpenFile(g.state, O_WRONLY | O_CREAT | O_TRUNC);
      const auto save_start = Clock::now();
      auto saved = co_await SaveState(*machine->qmp, out.get(), RamInStream::kAll, 60s);
      g.save = Clock::now() - save_start;
      if (!saved) {
        g.error = saved.error().message + "\nQEMU log:\n" + ReadFile(boot_dir / "qemu.log");
        co_return;
      }
      ::fsync(out.get());
      co_await machine->qmp->Execute("quit");
      co_await machine->qemu->WaitExit();
    });
    if (!runner.RunFor(180s)) g.error += " (" + runner.Describe() + ")";
    if (!g.error.empty()) return;
    // Frozen: from now on only a read-only backing file.
    fs::rename(spec.overlay, g.disk);
    ::chmod(g.disk.c_str(), 0444);
    std::printf("[ timing ] cold boot to agent ready: %ld ms; save: %ld ms, state %llu bytes\n",
                Ms(g.cold_boot), Ms(g.save), static_cast<unsigned long long>(fs::file_size(g.state)));
  }

  static void TearDownTestSuite() {
    delete golden_;
    golden_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(golden_->error.empty()) << "no golden state: " << golden_->error;
  }

  // A clone's launch spec: its own dir and id, the frozen disk in the chain.
  QemuLaunchSpec CloneSpec(const std::string& id) {
    const fs::path dir = clone_dir_.path() / id;
    fs::create_directories(dir);
    QemuLaunchSpec spec = SpecIn(dir, id);
    spec.frozen_image = golden_->disk.string();
    spec.incoming_defer = true;
    return spec;
  }

  // When the host connects to the new QEMU's agent socket. Before the load,
  // the restored port state says "host connected" and so does the chardev:
  // the guest sees no change at all. Well after `cont`, the guest first sees
  // the host gone (the saved state said connected, the new chardev is not),
  // and the agent must take the new connection by itself.
  enum class AgentConnect { kBeforeLoad, kLateAfterCont };
  static constexpr milliseconds kLateConnectDelay{500};

  // Restores a clone and checks the guest carried on from the saved moment.
  void RestoreAndCheck(const std::string& id, AgentConnect when) {
    const QemuLaunchSpec spec = CloneSpec(id);
    const auto frozen_before = DigestFile(golden_->disk);
    ASSERT_TRUE(frozen_before);
    CoroutineRunner runner;
    runner.Spawn([&]() -> awaitable<void> {
      const auto start = Clock::now();
      auto machine = co_await Start(spec, golden_->disk.string());
      CO_ASSERT_TRUE(machine);
      const auto started = Clock::now();
      if (when == AgentConnect::kBeforeLoad) CO_ASSERT_TRUE(co_await ConnectAgent(*machine, spec));
      UniqueFd in = OpenFile(golden_->state, O_RDONLY);
      auto loaded = co_await LoadState(*machine->qmp, in.get(), RamInStream::kAll, 30s);
      if (!loaded) {
        ADD_FAILURE() << loaded.error().message << "\nQEMU log:\n"
                      << ReadFile(fs::path(spec.overlay).parent_path() / "qemu.log");
      }
      CO_ASSERT_TRUE(loaded);
      const auto load_done = Clock::now();
      CO_ASSERT_TRUE(co_await machine->qmp->Execute("cont"));
      if (when == AgentConnect::kLateAfterCont) {
        boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor, kLateConnectDelay);
        co_await pause.async_wait(boost::asio::use_awaitable);
        CO_ASSERT_TRUE(co_await ConnectAgent(*machine, spec));
      }
      auto ready = co_await machine->agent->WaitReady(20s);
      EXPECT_TRUE(ready) << (ready ? "" : ready.error().message) << "\nconsole:\n" << ReadFile(spec.console_log);
      CO_ASSERT_TRUE(ready);
      const auto answered = Clock::now();
      if (when == AgentConnect::kBeforeLoad) {
        std::printf("[ timing ] restore: overlay + QEMU start %ld ms, load %ld ms, cont to agent answering %ld ms; "
                    "total %ld ms = %.2f of the cold boot (%ld ms)\n",
                    Ms(started - start), Ms(load_done - started), Ms(answered - load_done), Ms(answered - start),
                    static_cast<double>(Ms(answered - start)) / static_cast<double>(Ms(golden_->cold_boot)),
                    Ms(golden_->cold_boot));
      } else {
        std::printf("[ timing ] agent connected %ld ms after cont, answering %ld ms later\n",
                    static_cast<long>(kLateConnectDelay.count()),
                    Ms(answered - load_done - kLateConnectDelay));
        // The guest's side of the reconnect, as the agent logs it.
        std::printf("[ console ] after restore:\n%s", ReadFile(spec.console_log).c_str());
      }

      GuestChannel& agent = *machine->agent;
      auto boot_id = co_await GuestSh(agent, "cat /proc/sys/kernel/random/boot_id");
      CO_ASSERT_TRUE(boot_id);
      EXPECT_EQ(*boot_id, golden_->boot_id) << "the guest rebooted instead of resuming";
      // Nothing sets the clock yet (the clone-identity step will): report how
      // far behind the restored guest's wall clock is.
      auto guest_now = co_await GuestSh(agent, "date +%s");
      if (guest_now) {
        const long host_now = static_cast<long>(std::time(nullptr));
        std::printf("[ clock ] restored guest's wall clock is %ld s behind the host's\n",
                    host_now - std::stol(*guest_now));
      }
      auto dirty = co_await GuestSh(agent, "cat /golden-dirty");
      EXPECT_TRUE(dirty && *dirty == "only in memory\n");
      // Through the chain from disk, not from the page cache.
      auto dropped = co_await GuestSh(agent, "sync && echo 3 > /proc/sys/vm/drop_caches");
      EXPECT_TRUE(dropped);
      auto synced = co_await GuestSh(agent, "cat /golden-synced");
      EXPECT_TRUE(synced && *synced == "on the frozen disk\n");
      const std::string write_own = "echo " + id + " > /clone-file && sync";
      auto written = co_await GuestSh(agent, write_own);
      EXPECT_TRUE(written);
      machine->qemu->Kill(SIGKILL);
      co_await machine->qemu->WaitExit();
    });
    EXPECT_TRUE(runner.RunFor(120s)) << runner.Describe();
    const auto frozen_after = DigestFile(golden_->disk);
    ASSERT_TRUE(frozen_after);
    EXPECT_EQ(frozen_after->checksum, frozen_before->checksum) << "a clone wrote to the frozen disk";
  }

  // Loads `state` into a clone of profile `spec` and expects a clean, quick failure.
  void ExpectLoadFails(QemuLaunchSpec spec, const fs::path& state) {
    CoroutineRunner runner;
    runner.Spawn([&]() -> awaitable<void> {
      auto machine = co_await Start(spec, golden_->disk.string());
      CO_ASSERT_TRUE(machine);
      UniqueFd in = OpenFile(state, O_RDONLY);
      const auto start = Clock::now();
      auto loaded = co_await LoadState(*machine->qmp, in.get(), RamInStream::kAll, 60s);
      const auto failed_after = Clock::now() - start;
      EXPECT_FALSE(loaded);
      EXPECT_LT(failed_after, 5s);
      if (!loaded) {
        std::printf("[ result ] failed after %ld ms: %s\n", Ms(failed_after), loaded.error().message.c_str());
      }
      // QEMU 7.2 exits by itself after a failed incoming migration.
      const ExitStatus status = co_await machine->qemu->WaitExit();
      EXPECT_FALSE(status.success()) << status.Describe();
      std::printf("[ result ] QEMU %s; its log:\n%s", status.Describe().c_str(),
                  ReadFile(fs::path(spec.overlay).parent_path() / "qemu.log").c_str());
    });
    EXPECT_TRUE(runner.RunFor(30s)) << runner.Describe() << " (QEMU did not exit after the failed load?)";
  }

  static Golden* golden_;
  TempDir clone_dir_{"avm-clone"};
};

VmSnapshotRestoreTest::Golden* VmSnapshotRestoreTest::golden_ = nullptr;

TEST_F(VmSnapshotRestoreTest, RestoredCloneResumesWithAgentConnectedBeforeLoad) {
  RestoreAndCheck("vm-clone-a", AgentConnect::kBeforeLoad);
}

TEST_F(VmSnapshotRestoreTest, RestoredCloneResumesWhenAgentConnectsLate) {
  RestoreAndCheck("vm-clone-b", AgentConnect::kLateAfterCont);
}

TEST_F(VmSnapshotRestoreTest, TruncatedStateFailsCleanly) {
  const fs::path truncated = clone_dir_.path() / "truncated-state";
  fs::copy_file(golden_->state, truncated);
  fs::resize_file(truncated, fs::file_size(truncated) / 2);
  ExpectLoadFails(CloneSpec("vm-trunc"), truncated);
}

TEST_F(VmSnapshotRestoreTest, StateOfAnotherProfileFailsCleanly) {
  QemuLaunchSpec bigger = CloneSpec("vm-bigger");
  bigger.memory_mib = 512;
  ExpectLoadFails(bigger, golden_->state);
}

TEST_F(VmSnapshotRestoreTest, FlippedBytesAreCaughtByTheChecksumNotByQemu) {
  // RAM pages travel raw: QEMU cannot notice a flipped bit inside one. The
  // golden store's checksum is what does.
  GoldenSnapshotStore store(clone_dir_.path() / "golden");
  const GoldenKey key{.image = "tiny"};
  const GoldenMeta expected{.qemu_version = "q", .command_line_hash = "c", .image_identity = "i"};
  auto writer = store.Begin(key);
  ASSERT_TRUE(writer);
  fs::copy_file(golden_->state, writer->state_file());
  fs::copy_file(golden_->disk, writer->disk());
  ASSERT_TRUE(writer->Commit(expected));
  const fs::path state = clone_dir_.path() / "golden" / key.DirName() / "state";
  ::chmod(state.c_str(), 0644);
  {
    std::fstream file(state, std::ios::in | std::ios::out | std::ios::binary);
    const auto middle = static_cast<std::streamoff>(fs::file_size(state) / 2);
    file.seekg(middle);
    const char byte = static_cast<char>(file.get());
    file.seekp(middle);
    file.put(static_cast<char>(byte ^ 0xff));
  }
  auto found = GoldenSnapshotStore(clone_dir_.path() / "golden").Find(key, expected);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_FALSE(*found);
  EXPECT_FALSE(fs::exists(clone_dir_.path() / "golden" / key.DirName()));
}

}  // namespace
}  // namespace agentvm::testing
