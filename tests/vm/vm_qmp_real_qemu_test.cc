// QmpClient against a real qemu-system-x86_64 with no machine at all
// (`-machine none`): starts in well under a second and speaks full QMP.
// A missing QEMU fails these tests; it does not skip them.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/pending.h"
#include "common/unique_fd.h"
#include "qmp/qmp_client.h"
#include "qmp/testing/coroutine_test.h"

namespace agentvm::qmp {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;
using testing::CoroutineRunner;
using Clock = std::chrono::steady_clock;
using Kind = QmpError::Kind;

std::string FindOnPath(const std::string& name) {
  const char* path = ::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// One QEMU in its own temporary directory; killed, reaped and cleaned up on
// every path out of a test, and killed by the kernel if the test binary dies.
class QemuUnderTest {
 public:
  QemuUnderTest() {
    char pattern[] = "/tmp/vm-qmp-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    socket_path_ = dir_ + "/qmp.sock";
    log_path_ = dir_ + "/qemu.log";
  }
  ~QemuUnderTest() {
    Kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  QemuUnderTest(const QemuUnderTest&) = delete;
  QemuUnderTest& operator=(const QemuUnderTest&) = delete;

  // Empty on success, else why QEMU could not be started.
  std::string Start() {
    std::string binary = FindOnPath("qemu-system-x86_64");
    if (binary.empty()) return "qemu-system-x86_64 not found on PATH (install qemu-system-x86)";
    std::vector<std::string> args = {binary,       "-machine",     "none",
                                     "-nodefaults", "-no-user-config", "-display",
                                     "none",        "-qmp",
                                     "unix:" + socket_path_ + ",server=on,wait=off"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return std::string("fork: ") + std::strerror(errno);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int null = ::open("/dev/null", O_RDONLY);
      int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(null, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return "";
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    Reap();
  }

  // Sends SIGKILL without reaping, to leave the death for the client to notice.
  void KillWithoutReaping() { ::kill(pid_, SIGKILL); }

  // Waits for QEMU to exit; its wait status, or -1 if it still runs after `timeout`.
  int WaitForExit(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return status;
      }
      if (Clock::now() >= deadline) return -1;
      ::usleep(10'000);
    }
    return -1;
  }

  std::string Log() const {
    std::ifstream in(log_path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  const std::string& dir() const { return dir_; }
  const std::string& socket_path() const { return socket_path_; }

 private:
  void Reap() {
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  std::string dir_;
  std::string socket_path_;
  std::string log_path_;
  pid_t pid_ = -1;
};

class VmQmpRealQemuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error = qemu_.Start();
    ASSERT_TRUE(error.empty()) << error;
  }

  // Connects (QEMU may still be creating its socket) and hands the client to `body`.
  template <class Body>
  void WithClient(Body body, std::chrono::milliseconds limit = 20s) {
    runner_.Spawn([this, body]() -> awaitable<void> {
      auto connected = co_await QmpClient::Connect(runner_.executor(), qemu_.socket_path(), 10s,
                                                   "vm-realqemu");
      if (!connected) {
        ADD_FAILURE() << connected.error().ToString() << "\nQEMU log:\n" << qemu_.Log();
        co_return;
      }
      std::unique_ptr<QmpClient> client = std::move(*connected);
      co_await body(*client);
    });
    EXPECT_TRUE(runner_.RunFor(limit)) << runner_.Describe() << "\nQEMU log:\n" << qemu_.Log();
  }

  // Declared first so it is destroyed last: sockets must not outlive it.
  CoroutineRunner runner_;
  QemuUnderTest qemu_;
};

TEST_F(VmQmpRealQemuTest, HandshakeQueriesAndTypedErrors) {
  WithClient([](QmpClient& client) -> awaitable<void> {
    EXPECT_TRUE(client.connected());
    auto version = co_await client.Execute("query-version");
    CO_ASSERT_TRUE(version);
    const json& qemu = (*version)["qemu"];
    EXPECT_EQ(client.qemu_version(), std::to_string(qemu["major"].get<int>()) + "." +
                                         std::to_string(qemu["minor"].get<int>()) + "." +
                                         std::to_string(qemu["micro"].get<int>()));

    auto status = co_await client.Execute("query-status");
    CO_ASSERT_TRUE(status);
    EXPECT_EQ(status->value("status", ""), "running");

    auto unknown = co_await client.Execute("no-such-command");
    CO_ASSERT_TRUE(!unknown);
    EXPECT_EQ(unknown.error().kind, Kind::kCommandFailed);
    EXPECT_EQ(unknown.error().qmp_class, "CommandNotFound");
    EXPECT_EQ(unknown.error().ToError().code, ErrorCode::kNotFound);
    EXPECT_EQ(unknown.error().ToString(),
              "qmp no-such-command: CommandNotFound: The command no-such-command has not been found");

    json bad_arguments = {{"no-such-argument", 1}};
    auto invalid = co_await client.Execute("query-status", bad_arguments);
    CO_ASSERT_TRUE(!invalid);
    EXPECT_EQ(invalid.error().qmp_class, "GenericError");
    EXPECT_TRUE(client.connected());
  });
}

TEST_F(VmQmpRealQemuTest, StopAndContProduceStopAndResumeEvents) {
  WithClient([](QmpClient& client) -> awaitable<void> {
    std::vector<std::string> seen;
    client.Subscribe([&](const QmpEvent& event) { seen.push_back(event.name); });

    EventWaiter stopped = client.ExpectEvent("STOP");
    CO_ASSERT_TRUE(co_await client.Execute("stop"));
    auto stop = co_await stopped.Wait(5s);
    CO_ASSERT_TRUE(stop);
    EXPECT_TRUE(stop->timestamp.contains("seconds"));
    auto paused = co_await client.Execute("query-status");
    CO_ASSERT_TRUE(paused);
    EXPECT_EQ(paused->value("status", ""), "paused");

    EventWaiter resumed = client.ExpectEvent("RESUME");
    CO_ASSERT_TRUE(co_await client.Execute("cont"));
    CO_ASSERT_TRUE(co_await resumed.Wait(5s));
    EXPECT_EQ(seen, (std::vector<std::string>{"STOP", "RESUME"}));
  });
}

TEST_F(VmQmpRealQemuTest, QuitGivesShutdownThenTheDisconnectIsNoticed) {
  WithClient([this](QmpClient& client) -> awaitable<void> {
    Pending<QmpError> lost(runner_.executor());
    client.OnDisconnect([&](const QmpError& why) { lost.Set(why); });
    EventWaiter shutdown = client.ExpectEvent("SHUTDOWN");
    auto quit = co_await client.Execute("quit");
    // QEMU usually answers before it exits; losing the reply to the exit is fine too.
    EXPECT_TRUE(quit || quit.error().kind == Kind::kDisconnected) << quit.error().ToString();
    auto event = co_await shutdown.Wait(5s);
    CO_ASSERT_TRUE(event);
    EXPECT_EQ(event->data.value("reason", ""), "host-qmp-quit");
    auto why = co_await lost.Wait(5s);
    CO_ASSERT_TRUE(why);
    EXPECT_EQ(why->kind, Kind::kDisconnected);
    EXPECT_FALSE(client.connected());
  });
  int status = qemu_.WaitForExit(5s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

TEST_F(VmQmpRealQemuTest, KillNineIsNoticedWithinASecond) {
  WithClient([this](QmpClient& client) -> awaitable<void> {
    Pending<QmpError> lost(runner_.executor());
    int calls = 0;
    client.OnDisconnect([&](const QmpError& why) {
      ++calls;
      lost.Set(why);
    });
    CO_ASSERT_TRUE(co_await client.Execute("query-status"));
    EventWaiter never = client.ExpectEvent("SHUTDOWN");

    auto start = Clock::now();
    qemu_.KillWithoutReaping();
    auto why = co_await lost.Wait(1s);
    auto elapsed = Clock::now() - start;
    CO_ASSERT_TRUE(why);
    EXPECT_LT(elapsed, 1s);
    EXPECT_EQ(why->kind, Kind::kDisconnected);
    EXPECT_EQ(why->ToError().code, ErrorCode::kUnavailable);
    auto event = co_await never.Wait(1s);
    CO_ASSERT_TRUE(!event);
    EXPECT_EQ(event.error().kind, Kind::kDisconnected);
    auto after = co_await client.Execute("query-status");
    CO_ASSERT_TRUE(!after);
    EXPECT_EQ(after.error().kind, Kind::kDisconnected);
    EXPECT_EQ(calls, 1);
  });
  int status = qemu_.WaitForExit(5s);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "wait status " << status;
}

TEST_F(VmQmpRealQemuTest, GetfdHandsAFileToQemuForMigration) {
  // The path later work takes for snapshots: open the file here, hand it over
  // with getfd, then `migrate fd:NAME` writes the machine state into it.
  const std::string state_path = qemu_.dir() + "/state.bin";
  UniqueFd state(::open(state_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_TRUE(state.valid());
  WithClient([&](QmpClient& client) -> awaitable<void> {
    json events_on = {{"capabilities", json::array({{{"capability", "events"}, {"state", true}}})}};
    CO_ASSERT_TRUE(co_await client.Execute("migrate-set-capabilities", events_on));
    json getfd = {{"fdname", "state"}};
    auto passed = co_await client.ExecuteWithFd("getfd", getfd, state.get(), 5s);
    CO_ASSERT_TRUE(passed);
    state.reset();  // QEMU holds its own copy now

    CO_ASSERT_TRUE(co_await client.Execute("stop"));
    EventWaiter finished = client.ExpectEvent("MIGRATION", [](const QmpEvent& event) {
      std::string status = event.data.value("status", "");
      return status == "completed" || status == "failed";
    });
    json migrate = {{"uri", "fd:state"}};
    CO_ASSERT_TRUE(co_await client.Execute("migrate", migrate));
    auto event = co_await finished.Wait(10s);
    CO_ASSERT_TRUE(event);
    EXPECT_EQ(event->data.value("status", ""), "completed");

    // The name is gone once migrate consumed it; an unknown name is a typed error.
    auto closed = co_await client.Execute("closefd", getfd);
    CO_ASSERT_TRUE(!closed);
    EXPECT_EQ(closed.error().qmp_class, "GenericError");
  });
  std::ifstream in(state_path, std::ios::binary);
  std::array<char, 4> magic{};
  in.read(magic.data(), magic.size());
  EXPECT_EQ(std::string(magic.data(), magic.size()), "QEVM") << "not a QEMU migration stream";
}

}  // namespace
}  // namespace agentvm::qmp
