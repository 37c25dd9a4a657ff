// Each image (tiny, debian) on its own, booted with a hand-written QEMU
// command line (no agentvmd): image.json is complete, the guest reaches the
// agent (and qemu-ga, where the image has it), the ACPI power button powers
// it off, and a guest that cannot mount its root disk says why on the console
// and makes QEMU exit instead of hanging (the initramfs is the same for all).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "protocol/frame.h"
#include "tests/support/files.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace agentvm::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::filesystem::path ImageFolder(const std::string& name) {
  return std::filesystem::path(ImageDir()) / name;
}

nlohmann::json ImageJson(const std::string& name) {
  return nlohmann::json::parse(ReadFile(ImageFolder(name) / "image.json"), nullptr, false);
}

// The QEMU command line docs/guest-image.md gives for booting by hand.
std::vector<std::string> QemuArgv(const TempDir& dir, bool with_disk, const std::string& name = "tiny") {
  const auto image = ImageJson(name);
  const auto folder = ImageFolder(name);
  std::vector<std::string> argv = {
      "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
      "-machine", "q35,accel=tcg", "-m", "256",
      "-kernel", (folder / "vmlinuz").string(), "-initrd", (folder / "initrd.img").string(),
      // A short root wait keeps the missing-disk case quick.
      "-append", image.value("kernel_args", "") + " agentvm.channel=serial agentvm.rootwait=2",
      "-device", "virtio-serial-pci",
      "-chardev", "socket,id=agent,path=" + dir.str() + "/agent.sock,server=on,wait=off",
      "-device", "virtserialport,chardev=agent,name=agentvm.0",
      "-chardev", "socket,id=qga,path=" + dir.str() + "/qga.sock,server=on,wait=off",
      "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
      "-qmp", "unix:" + dir.str() + "/qmp.sock,server=on,wait=off",
      "-serial", "file:" + dir.str() + "/console.log", "-no-reboot"};
  if (with_disk) {
    const std::string overlay = dir.str() + "/overlay.qcow2";
    auto created = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-b",
                               (folder / "rootfs.qcow2").string(), "-F", "qcow2", overlay});
    EXPECT_EQ(created.exit_code, 0) << created.err;
    const std::string blockdev =
        R"({"driver":"qcow2","node-name":"disk0","file":{"driver":"file","filename":")" + overlay + R"("}})";
    argv.insert(argv.end(), {"-blockdev", blockdev, "-device", "virtio-blk-pci,drive=disk0"});
  }
  return argv;
}

// A QEMU running in the background; killed and reaped on destruction.
class Qemu {
 public:
  explicit Qemu(const std::vector<std::string>& argv) {
    std::vector<char*> raw;
    for (const auto& a : argv) raw.push_back(const_cast<char*>(a.c_str()));
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, raw[0], &actions, nullptr, raw.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Qemu() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Qemu(const Qemu&) = delete;
  Qemu& operator=(const Qemu&) = delete;

  bool started() const { return pid_ > 0; }

  // Exit status once QEMU has exited by itself within `timeout`.
  std::optional<int> WaitExit(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
};

// A connected unix socket; QEMU creates its listening sockets shortly after start.
class Conn {
 public:
  Conn(const std::string& path, Clock::time_point deadline) {
    while (Clock::now() < deadline) {
      fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
      if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return;
      close(fd_);
      fd_ = -1;
      std::this_thread::sleep_for(20ms);
    }
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool ok() const { return fd_ >= 0; }
  bool Send(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Whatever arrives within `wait`; empty on timeout, nullopt on EOF/error.
  std::optional<std::string> Receive(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return std::string();
    char buf[4096];
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
};

// Pings until the agent answers: the port takes host bytes only once the
// guest has opened it, so early pings may be lost.
bool AgentPongs(const std::string& socket_path, Clock::time_point deadline) {
  Conn conn(socket_path, deadline);
  if (!conn.ok()) return false;
  protocol::FrameDecoder decoder;
  const std::string ping = protocol::EncodeFrame(protocol::MakeFrame("ping", 1));
  while (Clock::now() < deadline) {
    if (!conn.Send(ping)) return false;
    auto bytes = conn.Receive(250ms);
    if (!bytes) return false;
    decoder.Feed(*bytes);
    while (auto event = decoder.Next()) {
      if (auto* frame = std::get_if<protocol::Frame>(&*event); frame && frame->type == "pong") return true;
    }
  }
  return false;
}

// One JSON line per reply on QMP and qemu-ga sockets; returns the first reply
// with "return" or "error", skipping events and greetings.
std::optional<nlohmann::json> JsonReply(Conn& conn, std::string& pending, std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      auto reply = nlohmann::json::parse(pending.substr(0, nl), nullptr, false);
      pending.erase(0, nl + 1);
      if (reply.is_object() && (reply.contains("return") || reply.contains("error"))) return reply;
    }
    auto bytes = conn.Receive(100ms);
    if (!bytes) return std::nullopt;
    pending += *bytes;
  }
  return std::nullopt;
}

// qemu-ga answers a guest-sync on its own port.
void ExpectQemuGaAnswers(const TempDir& dir, Clock::time_point deadline) {
  Conn qga(dir.str() + "/qga.sock", deadline);
  ASSERT_TRUE(qga.ok());
  std::string qga_pending;
  std::optional<nlohmann::json> synced;
  while (!synced && Clock::now() < deadline) {
    qga.Send(R"({"execute":"guest-sync","arguments":{"id":4242}})" "\n");
    synced = JsonReply(qga, qga_pending, 500ms);
  }
  ASSERT_TRUE(synced) << "qemu-ga never answered";
  EXPECT_EQ((*synced)["return"], 4242);
}

// Runs for every image the vm tier builds (scripts/test).
class VmImageTest : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Images, VmImageTest, ::testing::Values("tiny", "debian"),
                         [](const auto& info) { return info.param; });

TEST_P(VmImageTest, ImageJsonDescribesCompleteImage) {
  const auto image = ImageJson(GetParam());
  ASSERT_TRUE(image.is_object()) << "no image " << GetParam() << " in " << ImageDir();
  EXPECT_EQ(image.value("name", ""), GetParam());
  EXPECT_EQ(image.value("format", 0), 1);
  for (const char* key : {"kernel", "initrd", "rootfs"}) {
    const auto file = ImageFolder(GetParam()) / image.value(key, "missing");
    EXPECT_TRUE(std::filesystem::is_regular_file(file)) << key;
  }
  EXPECT_NE(image.value("kernel_args", "").find("root=/dev/vda"), std::string::npos);
  EXPECT_TRUE(std::regex_match(image.value("inputs_hash", ""), std::regex("[0-9a-f]{64}")));
  EXPECT_FALSE(image.value("kernel_version", "").empty());
  EXPECT_EQ(image.value("default_user", ""), GetParam() == "tiny" ? "root" : "agent");
}

TEST_P(VmImageTest, BootsToAgentThenPowersOffOnAcpiButton) {
  const auto image = ImageJson(GetParam());
  ASSERT_TRUE(image.is_object()) << "no image " << GetParam() << " in " << ImageDir();
  const bool has_qemu_ga = image.value("qemu_ga_version", "none") != "none";
  TempDir dir("avm-img");
  Qemu qemu(QemuArgv(dir, /*with_disk=*/true, GetParam()));
  ASSERT_TRUE(qemu.started());
  const auto started = Clock::now();
  const auto deadline = started + 120s;

  EXPECT_TRUE(AgentPongs(dir.str() + "/agent.sock", deadline))
      << "no pong from the agent; console:\n" << ReadFile(dir.path() / "console.log");
  RecordProperty("boot_to_agent_seconds",
                 std::to_string(std::chrono::duration<double>(Clock::now() - started).count()));

  if (has_qemu_ga) ExpectQemuGaAnswers(dir, deadline);

  Conn qmp(dir.str() + "/qmp.sock", deadline);
  ASSERT_TRUE(qmp.ok());
  std::string qmp_pending;
  qmp.Send(R"({"execute":"qmp_capabilities"})" "\n");
  ASSERT_TRUE(JsonReply(qmp, qmp_pending, 10s));
  qmp.Send(R"({"execute":"system_powerdown"})" "\n");
  ASSERT_TRUE(JsonReply(qmp, qmp_pending, 10s));

  auto status = qemu.WaitExit(60s);
  const std::string console = ReadFile(dir.path() / "console.log");
  ASSERT_TRUE(status) << "the guest ignored the power button; console:\n" << console;
  EXPECT_EQ(*status, 0);
  EXPECT_NE(console.find("Linux version"), std::string::npos) << console;
  EXPECT_NE(console.find("agentvm-rcS"), std::string::npos) << console;
  EXPECT_NE(console.find("agentvm-rcK: shutting down"), std::string::npos) << console;
}

// The initramfs is the same for every image: tiny's stands for all.
TEST(VmInitramfsTest, MissingRootDiskPowersOffWithReason) {
  TempDir dir("avm-img");
  auto result = RunCommand(QemuArgv(dir, /*with_disk=*/false), 180s);
  const std::string console = ReadFile(dir.path() / "console.log");
  EXPECT_EQ(result.exit_code, 0) << "QEMU did not exit by itself: " << result.err << "\nconsole:\n" << console;
  EXPECT_NE(console.find("FATAL: root device /dev/vda did not appear"), std::string::npos) << console;
}

}  // namespace
}  // namespace agentvm::testing
