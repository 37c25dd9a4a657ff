// No output is ever lost: 200 MB of random bytes from `cat` in a real guest
// reach a reader that keeps up and one that crawls, through the CLI and
// through plain curl, byte for byte, with agentvmd's memory bounded. A slow
// reader slows the command down (flow control reaches the guest) instead of
// being cut off.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

constexpr long kTotalBytes = 200 * 1000 * 1000;
// agentvmd holds at most one output window (1 MiB) and one batch of events
// per exec; everything else it needs is far below this.
constexpr long kPeakRssBoundKib = 64 * 1024;

std::string SlowReader() { return std::string(AGENTVM_SOURCE_DIR) + "/tests/support/slow_reader.py"; }

class VmExecOutputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon();
    auto created = daemon_->Cli({"create"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    id_ = created.out.substr(0, created.out.find('\n'));
    auto made = daemon_->Cli({"exec", id_, "--", "sh", "-c",
                              "head -c " + std::to_string(kTotalBytes) +
                                  " /dev/urandom > /root/f && sha256sum /root/f"},
                             std::chrono::seconds(300));
    ASSERT_EQ(made.exit_code, 0) << made.err;
    sum_ = made.out.substr(0, made.out.find(' '));
    ASSERT_EQ(sum_.size(), 64u) << made.out;
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }

  // Runs `producer | slow_reader.py reader_args` under bash; what the reader printed.
  static CommandResult Pipe(const std::string& producer, const std::string& reader_args) {
    return RunCommand({"bash", "-c", "set -o pipefail; " + producer + " | /usr/bin/python3 " + SlowReader() +
                                         " " + reader_args},
                      std::chrono::seconds(400));
  }
  static std::string Cli() { return BinPath("agentvm") + " --socket " + daemon_->socket(); }
  static std::string Curl() {
    return "curl -sS --unix-socket " + daemon_->socket() + " -X POST -d '{\"argv\":[\"cat\",\"/root/f\"]}' " +
           "http://agentvm/v1/vms/" + id_ + "/exec";
  }

  void ExpectMemoryBounded() {
    long peak = daemon_->PeakRssKib();
    EXPECT_GT(peak, 0);
    EXPECT_LT(peak, kPeakRssBoundKib) << "agentvmd peaked at " << peak << " KiB";
  }

  static Daemon* daemon_;
  static std::string id_;
  static std::string sum_;
};

Daemon* VmExecOutputTest::daemon_ = nullptr;
std::string VmExecOutputTest::id_;
std::string VmExecOutputTest::sum_;

TEST_F(VmExecOutputTest, TheCliDeliversEveryByteToAFastReader) {
  auto got = Pipe(Cli() + " exec " + id_ + " -- cat /root/f", "");
  EXPECT_EQ(got.exit_code, 0) << got.err;  // pipefail: the CLI's status too
  EXPECT_EQ(got.out, sum_ + " " + std::to_string(kTotalBytes) + "\n");
  ExpectMemoryBounded();
}

TEST_F(VmExecOutputTest, TheCliDeliversEveryByteToAReaderThrottledTo1MBPerSecond) {
  auto got = Pipe(Cli() + " exec " + id_ + " -- cat /root/f", "--rate 1000000 --slow-seconds 6");
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, sum_ + " " + std::to_string(kTotalBytes) + "\n");
  ExpectMemoryBounded();
}

TEST_F(VmExecOutputTest, CurlGetsEveryByteFastAndThrottled) {
  auto fast = Pipe(Curl(), "--ndjson");
  EXPECT_EQ(fast.exit_code, 0) << fast.err;
  EXPECT_EQ(fast.out, sum_ + " " + std::to_string(kTotalBytes) + " 0\n");
  auto slow = Pipe(Curl(), "--ndjson --rate 1000000 --slow-seconds 6");
  EXPECT_EQ(slow.exit_code, 0) << slow.err;
  EXPECT_EQ(slow.out, sum_ + " " + std::to_string(kTotalBytes) + " 0\n");
  ExpectMemoryBounded();
}

}  // namespace
}  // namespace agentvm::testing
