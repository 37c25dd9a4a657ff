// Interactive terminals as a user meets them: the real agentvm CLI runs on a
// pseudo-terminal this test holds the other end of (as a terminal emulator
// would), against a real guest. The remote command sees a terminal of the
// local size, follows a resize, gets ^C as a key, returns its status, and
// the local terminal's modes are as before when agentvm exits. Streamed
// stdin (-i without -t) is checked byte for byte with agentvmd's memory
// bounded.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/command.h"
#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

using namespace std::chrono_literals;

// agentvm on a pseudo-terminal; this side is the terminal's screen and keyboard.
class TerminalSession {
 public:
  TerminalSession(std::vector<std::string> args, unsigned short rows, unsigned short cols) {
    winsize size{};
    size.ws_row = rows;
    size.ws_col = cols;
    if (::openpty(&master_, &slave_, nullptr, nullptr, &size) != 0) throw std::runtime_error("openpty failed");
    ::tcgetattr(slave_, &modes_before_);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      // As a terminal emulator starts a shell: a new session whose
      // controlling terminal is the pty, so resizes send it SIGWINCH.
      ::setsid();
      ::ioctl(slave_, TIOCSCTTY, 0);
      for (int fd = 0; fd < 3; ++fd) ::dup2(slave_, fd);
      ::close(master_);
      ::close(slave_);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~TerminalSession() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(master_);
    ::close(slave_);
  }

  void Type(const std::string& keys) { ASSERT_EQ(::write(master_, keys.data(), keys.size()), ssize_t(keys.size())); }

  void Resize(unsigned short rows, unsigned short cols) {
    winsize size{};
    size.ws_row = rows;
    size.ws_col = cols;
    ::ioctl(master_, TIOCSWINSZ, &size);  // the kernel sends the session SIGWINCH
  }

  // Reads the screen until `text` has appeared; false after `timeout`.
  bool WaitFor(const std::string& text, std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (screen_.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (!ReadSome(200ms) && exited_) return screen_.find(text) != std::string::npos;
    }
    return true;
  }

  // agentvm's exit status; -1 if it did not exit within `timeout`.
  int Wait(std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exited_ && std::chrono::steady_clock::now() < deadline) ReadSome(100ms);
    if (!exited_) return -1;
    while (ReadSome(0ms)) {
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }

  const std::string& screen() const { return screen_; }
  termios ModesNow() const {
    termios now{};
    ::tcgetattr(slave_, &now);
    return now;
  }
  const termios& modes_before() const { return modes_before_; }

 private:
  bool ReadSome(std::chrono::milliseconds wait) {
    pollfd fd{master_, POLLIN, 0};
    bool got = false;
    if (::poll(&fd, 1, static_cast<int>(wait.count())) > 0 && (fd.revents & POLLIN)) {
      char buffer[4096];
      ssize_t n = ::read(master_, buffer, sizeof buffer);
      if (n > 0) {
        screen_.append(buffer, static_cast<std::size_t>(n));
        got = true;
      }
    }
    if (!exited_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    return got;
  }

  int master_ = -1;
  int slave_ = -1;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  termios modes_before_{};
  std::string screen_;
};

class VmTerminalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon();
    auto created = daemon_->Cli({"create"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    id_ = created.out.substr(0, created.out.find('\n'));
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  void SetUp() override { ASSERT_FALSE(id_.empty()) << "the VM did not start"; }

  static std::vector<std::string> Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {BinPath("agentvm"), "--socket", daemon_->socket()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  static inline Daemon* daemon_ = nullptr;
  static inline std::string id_;
};

TEST_F(VmTerminalTest, ACommandGetsATerminalOfTheLocalSizeAndFollowsAResize) {
  TerminalSession terminal(
      Cli({"exec", "-it", id_, "--", "sh", "-c",
           "tty; stty size; echo ready; read line; echo \"got:$line\"; stty size; exit 3"}),
      30, 100);
  ASSERT_TRUE(terminal.WaitFor("ready")) << terminal.screen();
  EXPECT_NE(terminal.screen().find("/dev/pts/"), std::string::npos) << terminal.screen();
  EXPECT_NE(terminal.screen().find("30 100"), std::string::npos) << terminal.screen();
  terminal.Resize(40, 120);
  std::this_thread::sleep_for(1s);  // the resize travels ahead of the next key
  terminal.Type("hello\r");
  ASSERT_TRUE(terminal.WaitFor("got:hello")) << terminal.screen();
  ASSERT_TRUE(terminal.WaitFor("40 120")) << terminal.screen();
  EXPECT_EQ(terminal.Wait(), 3) << terminal.screen();

  // The local terminal is as it was: echo, line editing and ^C signals back on.
  const termios now = terminal.ModesNow();
  const termios& before = terminal.modes_before();
  EXPECT_EQ(now.c_lflag, before.c_lflag);
  EXPECT_EQ(now.c_iflag, before.c_iflag);
  EXPECT_EQ(now.c_oflag, before.c_oflag);
}

TEST_F(VmTerminalTest, CtrlCIsAKeyForTheRemoteProgram) {
  TerminalSession terminal(Cli({"exec", "-it", id_, "--", "sh", "-c", "echo ready; sleep 100"}), 24, 80);
  ASSERT_TRUE(terminal.WaitFor("ready")) << terminal.screen();
  const auto pressed = std::chrono::steady_clock::now();
  terminal.Type("\x03");
  EXPECT_EQ(terminal.Wait(20s), 128 + SIGINT) << terminal.screen();
  EXPECT_LT(std::chrono::steady_clock::now() - pressed, 10s);
  auto left = daemon_->Cli({"exec", id_, "--", "sh", "-c", "pgrep -f 'sleep 10[0]' || echo none"});
  EXPECT_EQ(left.out, "none\n") << "the remote program ended with ^C";
}

TEST_F(VmTerminalTest, ShellIsALoginShellOfTheUser) {
  TerminalSession terminal(Cli({"shell", id_}), 24, 80);
  ASSERT_TRUE(terminal.WaitFor("# ")) << terminal.screen();  // root's prompt: tiny has no default user
  terminal.Type("echo \"user:$(id -u):$(pwd)\"; exit 4\r");
  ASSERT_TRUE(terminal.WaitFor("user:0:/root")) << terminal.screen();
  EXPECT_EQ(terminal.Wait(), 4) << terminal.screen();
}

TEST_F(VmTerminalTest, AClosedTerminalEndsTheRemoteCommand) {
  {
    TerminalSession terminal(Cli({"exec", "-it", id_, "--", "sh", "-c", "echo ready; sleep 200"}), 24, 80);
    ASSERT_TRUE(terminal.WaitFor("ready")) << terminal.screen();
  }  // agentvm is killed, as when its terminal window closes
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string left;
  while (std::chrono::steady_clock::now() < deadline) {
    left = daemon_->Cli({"exec", id_, "--", "sh", "-c", "pgrep -f 'sleep 20[0]' || echo none"}).out;
    if (left == "none\n") break;
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(left, "none\n") << "a command without -d ends with its client";
}

TEST_F(VmTerminalTest, StdinStreamsByteForByteWithBoundedMemory) {
  // 50 MB from a file through `exec -i`, as `head -c 50M file | agentvm exec -i`.
  auto piped = RunCommand(
      {"bash", "-c",
       "set -o pipefail; f=$(mktemp); trap 'rm -f $f' EXIT; head -c 50000000 /dev/urandom > $f; "
       "sha256sum < $f; start=$(date +%s%N); " +
           BinPath("agentvm") + " --socket " + daemon_->socket() + " exec -i " + id_ +
           " -- sha256sum < $f; echo \"$(( ($(date +%s%N) - start) / 1000000 )) ms\" >&2"},
      300s);
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  auto first_line = piped.out.substr(0, piped.out.find('\n') + 1);
  EXPECT_EQ(piped.out, first_line + first_line) << "the guest's sum equals the host's";
  RecordProperty("stdin_50MB", piped.err);
  const long peak = daemon_->PeakRssKib();
  EXPECT_GT(peak, 0);
  EXPECT_LT(peak, 64 * 1024) << "agentvmd peaked at " << peak << " KiB";
  RecordProperty("daemon_peak_rss_kib", std::to_string(peak));
}

}  // namespace
}  // namespace agentvm::testing
