// ConsoleLog: a guest writing its console without end costs the host no
// more than the ring in memory and the capped file on disk.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <boost/asio/io_context.hpp>

#include "supervisor/console_log.h"
#include "tests/support/coroutine_runner.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Bytes that tell one position from another: "000000 000001 ...".
std::string Numbered(std::size_t from, std::size_t count) {
  std::string out;
  for (std::size_t i = from; i < from + count; ++i) {
    char word[8];
    std::snprintf(word, sizeof word, "%06zu ", i % 1000000);
    out += word;
  }
  return out;
}

class ConsoleLogTest : public ::testing::Test {
 protected:
  ConsoleLogTest() {
    std::string pattern = (fs::temp_directory_path() / "agentvm-console-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
  }
  ~ConsoleLogTest() override { fs::remove_all(dir_); }

  // Writes `data` as QEMU would and runs the loop until the log took it all.
  void Write(ConsoleLog& log, int fd, const std::string& data) {
    const std::uint64_t want = log.total_bytes() + data.size();
    std::string_view left = data;
    while (!left.empty()) {
      ssize_t n = ::write(fd, left.data(), left.size());
      ASSERT_GT(n, 0);
      left.remove_prefix(static_cast<std::size_t>(n));
      run_.RunUntil([&] { return log.total_bytes() >= want - left.size(); }, 5s);
    }
    run_.RunUntil([&] { return log.total_bytes() >= want; }, 5s);
    ASSERT_EQ(log.total_bytes(), want);
  }

  boost::asio::io_context io_;
  testing::CoroutineRunner run_{io_};
  fs::path dir_;
};

TEST_F(ConsoleLogTest, KeepsTheTailInMemoryAndTheFileUnderItsCap) {
  const fs::path file = dir_ / "console.log";
  ConsoleLog log(io_.get_executor(), file, "vm-console", /*ring_bytes=*/4096, /*file_bytes=*/64 * 1024);
  auto qemu_end = log.Connect();
  ASSERT_TRUE(qemu_end.has_value()) << qemu_end.error().ToString();
  // 70000 words of 7 bytes: ~490 KB, over 7 times the file cap and 100
  // times the ring.
  const std::string all = Numbered(0, 70000);
  for (std::size_t at = 0; at < all.size(); at += 50000) Write(log, qemu_end->get(), all.substr(at, 50000));

  EXPECT_EQ(log.Tail(1 << 20), all.substr(all.size() - 4096));
  EXPECT_EQ(log.Tail(100), all.substr(all.size() - 100));
  const std::string current = ReadAll(file);
  const std::string older = ReadAll(ConsoleLog::Rotated(file));
  EXPECT_LE(current.size() + older.size(), 64u * 1024);
  EXPECT_GT(older.size(), 0u);
  // The two files are the stream's tail, in order.
  const std::string on_disk = older + current;
  EXPECT_EQ(on_disk, all.substr(all.size() - on_disk.size()));
}

TEST_F(ConsoleLogTest, ARelaunchedQemuGetsANewEndpointAndTheLogGoesOn) {
  const fs::path file = dir_ / "console.log";
  ConsoleLog log(io_.get_executor(), file, "vm-console");
  auto first = log.Connect();
  ASSERT_TRUE(first.has_value());
  Write(log, first->get(), "first boot\n");
  auto second = log.Connect();
  ASSERT_TRUE(second.has_value());
  Write(log, second->get(), "second boot\n");
  EXPECT_EQ(log.Tail(1024), "first boot\nsecond boot\n");
  EXPECT_EQ(ReadAll(file), "first boot\nsecond boot\n");
  // The first endpoint is no longer drained: its peer is closed.
  EXPECT_LT(::send(first->get(), "x", 1, MSG_NOSIGNAL), 0);
}

TEST_F(ConsoleLogTest, AnUnwritableFileLeavesTheRingWorking) {
  ConsoleLog log(io_.get_executor(), dir_ / "missing-dir" / "console.log", "vm-console");
  auto qemu_end = log.Connect();
  ASSERT_TRUE(qemu_end.has_value());
  Write(log, qemu_end->get(), "still kept\n");
  EXPECT_EQ(log.Tail(1024), "still kept\n");
}

}  // namespace
}  // namespace agentvm
