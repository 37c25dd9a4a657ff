// A real guest takes the identity it is given: at boot from the kernel command
// line (agentvm.ip=, agentvm.gw=, agentvm.dns=, agentvm.hostname=, applied by
// the image's /etc/agentvm/network-up), and afterwards from
// GuestChannel::Configure, as a clone restored from a golden snapshot does.
//
// One QEMU for the whole file, booted by hand (no agentvmd: the daemon API has
// no configure call). Its NIC sits on a QEMU hub with no other port, so the
// guest has an eth0 to configure while no packet goes anywhere.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "supervisor/guest_channel.h"
#include "supervisor/guest_connector.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace agentvm::testing {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

constexpr std::int64_t k2030 = 1893456000;  // 2030-01-01T00:00:00Z

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs one coroutine at a time on `io` from the test thread, which is the
// only thread that ever runs `io` (GuestChannel's threading rule).
template <class T>
T RunOn(asio::io_context& io, asio::awaitable<T> task, std::chrono::seconds limit = 120s) {
  auto slot = std::make_shared<std::optional<T>>();
  asio::co_spawn(
      io,
      [slot, task = std::move(task)]() mutable -> asio::awaitable<void> {
        slot->emplace(co_await std::move(task));
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!slot->has_value() && std::chrono::steady_clock::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(10ms);
  }
  if (!slot->has_value()) throw std::runtime_error("coroutine did not finish in time");
  return std::move(**slot);
}

struct ShellResult {
  int status = -1;
  std::string out;
  std::string err;
};

class VmGuestIdentityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("avm-id");
    const auto tiny = std::filesystem::path(ImageDir()) / "tiny";
    auto image = nlohmann::json::parse(Slurp(tiny / "image.json"), nullptr, false);
    ASSERT_TRUE(image.is_object()) << "no image.json in " << tiny;
    const std::string overlay = dir_->str() + "/overlay.qcow2";
    auto created = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-b",
                               (tiny / "rootfs.qcow2").string(), "-F", "qcow2", overlay});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    const std::string blockdev =
        R"({"driver":"qcow2","node-name":"disk0","file":{"driver":"file","filename":")" + overlay +
        R"("}})";
    const std::string append = image.value("kernel_args", "") +
                               " agentvm.channel=serial agentvm.hostname=boot-name"
                               " agentvm.ip=10.101.0.5/16 agentvm.gw=10.101.0.1"
                               " agentvm.dns=10.101.0.1";
    // clang-format off
    std::vector<std::string> argv = {
        "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
        "-machine", "q35,accel=tcg", "-m", "256",
        "-kernel", (tiny / "vmlinuz").string(), "-initrd", (tiny / "initrd.img").string(),
        "-append", append,
        "-blockdev", blockdev, "-device", "virtio-blk-pci,drive=disk0",
        "-netdev", "hubport,id=net0,hubid=0",
        "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56",
        "-device", "virtio-serial-pci",
        "-chardev", "socket,id=agent,path=" + dir_->str() + "/agent.sock,server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=agentvm.0",
        "-serial", "file:" + dir_->str() + "/console.log", "-no-reboot"};
    // clang-format on
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    const std::string qemu_err = dir_->str() + "/qemu.err";
    posix_spawn_file_actions_addopen(&actions, 2, qemu_err.c_str(), O_WRONLY | O_CREAT, 0644);
    int spawned = posix_spawnp(&qemu_pid_, raw[0], &actions, nullptr, raw.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(spawned, 0) << "cannot start qemu-system-x86_64";

    boot_started_ = std::chrono::steady_clock::now();
    io_ = new asio::io_context;
    auto socket = RunOn(*io_, ConnectGuestUnix(dir_->str() + "/agent.sock", 30000ms));
    ASSERT_TRUE(socket.has_value()) << socket.error().ToString();
    channel_ = new GuestChannel(std::move(*socket), "vm-identity");
    channel_->Start();
    auto ready = RunOn(*io_, channel_->WaitReady(120000ms));
    ASSERT_TRUE(ready.has_value()) << ready.error().ToString() << "\nconsole:\n" << Console();
    boot_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - boot_started_).count();
    // What boot made of the kernel command line, before any test changes it.
    boot_state_ = Sh("hostname; ip -4 addr show dev eth0; ip route; cat /etc/resolv.conf");
    ready_ = true;
  }

  static void TearDownTestSuite() {
    delete channel_;
    channel_ = nullptr;
    delete io_;
    io_ = nullptr;
    if (qemu_pid_ > 0) {
      kill(qemu_pid_, SIGKILL);
      waitpid(qemu_pid_, nullptr, 0);
      qemu_pid_ = -1;
    }
    delete dir_;
    dir_ = nullptr;
    ready_ = false;
  }

  void SetUp() override {
    ASSERT_TRUE(ready_) << "the guest did not boot";
    ASSERT_FALSE(channel_->closed());
  }

  static std::string Console() { return dir_ ? Slurp(dir_->path() / "console.log") : ""; }

  static ShellResult Sh(const std::string& script) {
    ShellResult result;
    protocol::ExecRequest request;
    request.argv = {"/bin/sh", "-c", script};
    request.timeout = 30000ms;
    auto sink = [&result](protocol::OutputStream which, std::string_view data) {
      (which == protocol::OutputStream::kStdout ? result.out : result.err).append(data);
    };
    auto exit = RunOn(*io_, channel_->Exec(request, sink));
    if (!exit) {
      result.err += exit.error().ToString();
      return result;
    }
    result.status = exit->ShellStatus();
    return result;
  }

  static Result<void> Configure(GuestIdentity identity) {
    return RunOn(*io_, channel_->Configure(std::move(identity), 30000ms));
  }

  static inline TempDir* dir_ = nullptr;
  static inline pid_t qemu_pid_ = -1;
  static inline asio::io_context* io_ = nullptr;
  static inline GuestChannel* channel_ = nullptr;
  static inline std::chrono::steady_clock::time_point boot_started_;
  static inline double boot_seconds_ = 0;
  static inline ShellResult boot_state_;
  static inline bool ready_ = false;
};

TEST_F(VmGuestIdentityTest, BootParametersConfigureTheNetworkAndName) {
  RecordProperty("boot_to_agent_seconds", std::to_string(boot_seconds_));
  const ShellResult& shown = boot_state_;
  ASSERT_EQ(shown.status, 0) << shown.err;
  EXPECT_NE(shown.out.find("boot-name\n"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("inet 10.101.0.5/16"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("default via 10.101.0.1 dev eth0"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("nameserver 10.101.0.1\n"), std::string::npos) << shown.out;
  EXPECT_NE(Console().find("eth0: 10.101.0.5/16 via 10.101.0.1, dns 10.101.0.1"), std::string::npos)
      << Console();
}

TEST_F(VmGuestIdentityTest, ConfigureSetsHostnameClockAndEntropy) {
  auto uuid_before = Sh("cat /proc/sys/kernel/random/uuid");
  ASSERT_EQ(uuid_before.status, 0) << uuid_before.err;

  GuestIdentity identity;
  identity.hostname = "clone-7";
  identity.time_unix_ns = k2030 * 1000000000LL;
  // entropy left empty: GuestChannel draws 64 bytes from the host.
  auto configured = Configure(identity);
  ASSERT_TRUE(configured.has_value()) << configured.error().ToString() << "\n" << Console();

  auto shown =
      Sh("hostname; cat /etc/hostname; date +%s; "
         "cat /proc/sys/kernel/random/uuid /proc/sys/kernel/random/uuid");
  ASSERT_EQ(shown.status, 0) << shown.err;
  std::istringstream lines(shown.out);
  std::string name, file_name, date, uuid1, uuid2;
  std::getline(lines, name);
  std::getline(lines, file_name);
  std::getline(lines, date);
  std::getline(lines, uuid1);
  std::getline(lines, uuid2);
  EXPECT_EQ(name, "clone-7");
  EXPECT_EQ(file_name, "clone-7");
  std::int64_t guest_now = std::stoll(date);
  EXPECT_GE(guest_now, k2030);
  EXPECT_LT(guest_now, k2030 + 120) << "the guest clock is not near 2030-01-01";
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(uuid1, uuid)) << uuid1;
  EXPECT_TRUE(std::regex_match(uuid2, uuid)) << uuid2;
  EXPECT_NE(uuid1, uuid2);

  // The largest entropy the protocol takes is accepted by the guest's kernel.
  GuestIdentity more;
  more.entropy = std::string(protocol::kMaxEntropyBytes, '\x5a');
  for (std::size_t i = 0; i < more.entropy.size(); ++i)
    more.entropy[i] ^= static_cast<char>(i * 31);
  auto mixed = Configure(more);
  EXPECT_TRUE(mixed.has_value()) << mixed.error().ToString();
  auto after = Sh("cat /proc/sys/kernel/random/uuid && head -c 16 /dev/urandom | od -An -tx1");
  EXPECT_EQ(after.status, 0) << after.err;
}

TEST_F(VmGuestIdentityTest, ConfigureReplacesTheNetworkIdentity) {
  GuestIdentity identity;
  identity.network =
      GuestNetwork{"10.101.7.9/16", "10.101.0.254", "10.101.0.53", "02:00:0a:65:07:09"};
  auto configured = Configure(identity);
  ASSERT_TRUE(configured.has_value()) << configured.error().ToString() << "\n" << Console();

  auto shown =
      Sh("ip link show dev eth0; ip -4 addr show dev eth0; ip route; cat /etc/resolv.conf");
  ASSERT_EQ(shown.status, 0) << shown.err;
  EXPECT_NE(shown.out.find("link/ether 02:00:0a:65:07:09"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find(",UP"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("inet 10.101.7.9/16"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("inet 10.101.0.5/"), std::string::npos) << "old address left:\n"
                                                                   << shown.out;
  EXPECT_NE(shown.out.find("default via 10.101.0.254 dev eth0"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("default via 10.101.0.1 "), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("nameserver 10.101.0.53\n"), std::string::npos) << shown.out;
}

TEST_F(VmGuestIdentityTest, AFailingStepIsReportedByName) {
  // A gateway outside every on-link prefix: the kernel refuses the route.
  GuestIdentity identity;
  identity.network = GuestNetwork{{}, "192.0.2.1", {}, {}};
  auto configured = Configure(identity);
  ASSERT_FALSE(configured.has_value());
  EXPECT_EQ(configured.error().code, ErrorCode::kInternal);
  EXPECT_EQ(configured.error().message,
            "configure: network: ip route replace default via 192.0.2.1 dev eth0: exit status 2: "
            "ip: RTNETLINK answers: Network is unreachable");
  // The channel and the agent carry on.
  EXPECT_EQ(Sh("true").status, 0);
}

}  // namespace
}  // namespace agentvm::testing
