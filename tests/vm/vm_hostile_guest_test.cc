// A hostile guest against the daemon's caps (docs/security.md): one that
// kills its agent and floods the control port with junk frames without ever
// reading, and one that writes its serial console without end. The daemon's
// memory, the run dir and the console log stay under their caps; only the
// hostile VM is marked; another VM keeps working.
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/daemon.h"
#include "tests/support/temp_dir.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// agentvmd with two small VMs and the junk it refused; far below what an
// unbounded queue of error replies reached.
constexpr long kPeakRssBoundKib = 64 * 1024;
constexpr auto kFloodFor = 30s;
// TCG's serial port moves about 40 KB/s on a loaded 2-core machine (probed:
// 3 MB in 76 s), so the console test lowers the caps (config keys
// console_memory_kib, console_file_kib) to keep the flood at 15 times the
// file cap and 120 times the memory cap while it runs in about 25 s.
constexpr std::size_t kRingBytes = 8 * 1024;
constexpr std::uintmax_t kFileCapBytes = 64 * 1024;
constexpr long kConsoleFloodBytes = 1000 * 1000;

// The guest-side script: stop init from bringing the agent back, kill it,
// and write junk frames to its port for good, never reading.
constexpr char kFloodScript[] = R"SH(
rm -f /etc/init.d/agentvm-guest
printf '#!/bin/sh\nexec sleep 100000\n' > /etc/init.d/agentvm-guest
chmod 755 /etc/init.d/agentvm-guest
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name)" = agentvm.0 ] && port=/dev/${p##*/}
done
kill -9 $(pidof agentvm-guest)
sleep 1
# Junk of every kind: not JSON, a 1 MiB header, a header nested 100 deep.
deep=$(printf '%0100d' 0 | tr 0 '[')
while :; do
  printf '\000\000\000\010\000\000\000\000not json'
  printf '\000\020\000\000\000\000\000\000'
  dd if=/dev/zero bs=65536 count=16 2>/dev/null
  printf '\000\000\000\144\000\000\000\000%s' "$deep"
done > $port
)SH";

std::string CreateVm(const Daemon& daemon) {
  auto created = daemon.Cli({"create"});
  EXPECT_EQ(created.exit_code, 0) << created.err;
  return created.out.substr(0, created.out.find('\n'));
}

TEST(VmHostileGuestTest, AJunkFloodWithoutReadingFailsOnlyItsOwnChannel) {
  const auto start = std::chrono::steady_clock::now();
  Daemon daemon;
  auto hostile_future = std::async(std::launch::async, [&] { return CreateVm(daemon); });
  const std::string other = CreateVm(daemon);
  const std::string hostile = hostile_future.get();
  ASSERT_FALSE(hostile.empty());
  ASSERT_FALSE(other.empty());

  // The script travels in the environment: one argv, no quoting games.
  auto flood = daemon.Cli({"exec", hostile, "-e", std::string("FLOOD=") + kFloodScript, "--", "sh", "-c",
                           "setsid sh -c 'eval \"$FLOOD\"' </dev/null >/dev/null 2>&1 &"},
                          60s);
  ASSERT_EQ(flood.exit_code, 0) << flood.err;

  // The host refuses the junk, then gives up on the channel.
  std::string failure;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
    failure = daemon.Inspect(hostile).value("guest_channel_error", "");
    if (!failure.empty()) break;
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_FALSE(failure.empty()) << daemon.Log();
  EXPECT_NE(failure.find("broke the protocol"), std::string::npos) << failure;
  EXPECT_EQ(daemon.Inspect(hostile)["state"], "running");

  // The guest goes on flooding; the daemon and the other VM do not care.
  const auto flood_end = std::chrono::steady_clock::now() + kFloodFor;
  int other_execs = 0;
  while (std::chrono::steady_clock::now() < flood_end) {
    auto echo = daemon.Cli({"exec", other, "--", "echo", "still here"}, 60s);
    EXPECT_EQ(echo.exit_code, 0) << echo.err;
    EXPECT_EQ(echo.out, "still here\n");
    ++other_execs;
    const long peak = daemon.PeakRssKib();
    EXPECT_GT(peak, 0);
    EXPECT_LT(peak, kPeakRssBoundKib) << "agentvmd peaked at " << peak << " KiB";
    std::this_thread::sleep_for(1s);
  }
  EXPECT_GT(other_execs, 5);

  auto refused = daemon.Cli({"exec", hostile, "--", "true"}, 60s);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("guest channel failed"), std::string::npos) << refused.err;
  auto listed = daemon.Cli({"ls"});
  EXPECT_NE(listed.out.find("guest channel failed"), std::string::npos) << listed.out;
  std::printf("[ measure ] junk flood: peak RSS %ld KiB, %d execs on the other VM, %.1f s in all\n",
              daemon.PeakRssKib(), other_execs,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_EQ(daemon.Cli({"rm", "-f", hostile, other}).exit_code, 0);
}

std::uintmax_t SizeOrZero(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

std::uintmax_t DirBytes(const fs::path& dir) {
  std::uintmax_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

TEST(VmHostileGuestTest, AConsoleFloodStaysUnderTheCaps) {
  const auto start = std::chrono::steady_clock::now();
  TempDir config_dir("avm-console");
  const fs::path config = config_dir.path() / "agentvmd.yaml";
  std::ofstream(config) << "console_memory_kib: " << kRingBytes / 1024 << "\nconsole_file_kib: " << kFileCapBytes / 1024
                        << "\n";
  Daemon daemon({.extra_args = {"--config", config.string()}});
  const std::string id = CreateVm(daemon);
  ASSERT_FALSE(id.empty());
  const fs::path vm_dir = fs::path(daemon.run_dir()) / "vms" / id;

  // Lines of 64 bytes, then a marker the tail must end with.
  const long flood_bytes = kConsoleFloodBytes;
  const auto flood_start = std::chrono::steady_clock::now();
  auto flood = daemon.Cli({"exec", id, "--", "sh", "-c",
                           "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c " +
                               std::to_string(flood_bytes) + " > /dev/ttyS0 && echo END-OF-FLOOD > /dev/ttyS0"},
                          180s);
  ASSERT_EQ(flood.exit_code, 0) << flood.err;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - flood_start).count();

  std::string tail;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
    tail = daemon.Cli({"logs", id}).out;
    if (tail.find("END-OF-FLOOD") != std::string::npos) break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_LE(tail.size(), kRingBytes);
  EXPECT_GT(tail.size(), kRingBytes / 2);
  EXPECT_NE(tail.find("END-OF-FLOOD"), std::string::npos) << tail.substr(tail.size() > 300 ? tail.size() - 300 : 0);
  EXPECT_NE(tail.find("0123456789abcdefghijklmnopqrstuvwxyz"), std::string::npos);

  const std::uintmax_t on_disk = SizeOrZero(vm_dir / "console.log") + SizeOrZero(vm_dir / "console.log.1");
  EXPECT_LE(on_disk, kFileCapBytes);
  EXPECT_GT(on_disk, kFileCapBytes / 2);
  const std::uintmax_t run_dir = DirBytes(vm_dir);
  // Besides the console: sockets, the pidfile, QEMU's few lines of log.
  EXPECT_LT(run_dir, kFileCapBytes + 64 * 1024) << "the VM's run dir holds " << run_dir << " bytes";
  std::printf("[ measure ] console flood: %ld bytes in %.1f s (%.2f MB/s); logs %zu bytes, console files %ju "
              "bytes, run dir %ju bytes; %.1f s in all\n",
              flood_bytes, seconds, flood_bytes / seconds / 1e6, tail.size(), on_disk, run_dir,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace agentvm::testing
