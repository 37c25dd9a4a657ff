// write_file and read_file through the real agentvm-guest binary (--fd). The
// agent runs on the host here, so the tests check its work with stat/open.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "protocol/messages.h"
#include "guest-images/agent/testing/agent_harness.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using testing::AgentProcess;
using testing::AgentTestBase;
using testing::FrameClient;

std::string Binary(std::size_t size) {
  std::string bytes(size, '\0');
  std::uint32_t x = 12345;
  for (std::size_t i = 0; i < size; ++i) {
    x = x * 1103515245 + 12345;
    bytes[i] = static_cast<char>(x >> 16);
  }
  return bytes;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AgentFilesTest : public AgentTestBase {
 protected:
  void SetUp() override {
    AgentTestBase::SetUp();
    char tmpl[] = "/tmp/agentvm-files-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  protocol::Frame Request(const protocol::Frame& frame) {
    EXPECT_TRUE(client_->Send(frame));
    auto frames = client_->Collect(frame.stream);
    EXPECT_FALSE(frames.empty());
    return frames.empty() ? protocol::Frame{} : frames.back();
  }

  protocol::Frame Write(const std::string& path, std::string_view data, std::uint64_t offset = 0,
                        bool truncate = true, std::optional<std::uint32_t> mode = 0644) {
    return Request(protocol::WriteFileFrame(++stream_, {path, mode, offset, truncate}, data));
  }

  protocol::Frame Read(const std::string& path, std::uint64_t offset = 0,
                       std::uint64_t length = protocol::kFileChunkBytes) {
    return Request(protocol::ReadFileFrame(++stream_, {path, offset, length}));
  }

  void ExpectError(const protocol::Frame& frame, std::string_view code, std::string_view message) {
    ASSERT_EQ(frame.type, protocol::kTypeError) << frame.header.dump();
    auto error = protocol::ParseError(frame);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->code, code);
    EXPECT_EQ(error->message, message);
  }

  std::string dir_;
  std::uint32_t stream_ = 0;
};

TEST_F(AgentFilesTest, BinaryRoundTripWithMode) {
  std::string path = dir_ + "/bin";
  std::string data = Binary(4096) + std::string(100, '\0');
  protocol::Frame ok = Write(path, data, 0, true, 0600);
  ASSERT_EQ(ok.type, protocol::kTypeOk) << ok.header.dump();
  EXPECT_EQ(protocol::ParseOk(ok).value(), data.size());
  EXPECT_EQ(Slurp(path), data);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  protocol::Frame read = Read(path);
  ASSERT_EQ(read.type, protocol::kTypeData) << read.header.dump();
  auto info = protocol::ParseData(read).value();
  EXPECT_EQ(info.size, data.size());
  EXPECT_EQ(info.mode, 0600u);
  EXPECT_TRUE(info.eof);
  EXPECT_EQ(read.payload, data);
}

TEST_F(AgentFilesTest, ThreeMebibytesInChunks) {
  std::string path = dir_ + "/big";
  std::string data = Binary(3 * 1024 * 1024 + 17);
  const std::size_t chunk = protocol::kFileChunkBytes;
  for (std::size_t offset = 0; offset < data.size(); offset += chunk) {
    protocol::Frame ok =
        Write(path, std::string_view(data).substr(offset, chunk), offset, offset == 0);
    ASSERT_EQ(ok.type, protocol::kTypeOk) << ok.header.dump();
    EXPECT_EQ(protocol::ParseOk(ok).value(), std::min(data.size(), offset + chunk));
  }
  EXPECT_EQ(Slurp(path), data);

  std::string back;
  bool eof = false;
  while (!eof) {
    protocol::Frame read = Read(path, back.size(), chunk);
    ASSERT_EQ(read.type, protocol::kTypeData) << read.header.dump();
    auto info = protocol::ParseData(read).value();
    EXPECT_EQ(info.size, data.size());
    back += read.payload;
    eof = info.eof;
    ASSERT_LE(back.size(), data.size());
  }
  EXPECT_EQ(back, data);

  // Rewriting with truncate replaces the content.
  ASSERT_EQ(Write(path, "short").type, protocol::kTypeOk);
  EXPECT_EQ(Slurp(path), "short");
}

TEST_F(AgentFilesTest, EmptyFile) {
  std::string path = dir_ + "/empty";
  protocol::Frame ok = Write(path, "");
  ASSERT_EQ(ok.type, protocol::kTypeOk);
  EXPECT_EQ(protocol::ParseOk(ok).value(), 0u);
  protocol::Frame read = Read(path);
  ASSERT_EQ(read.type, protocol::kTypeData);
  EXPECT_TRUE(protocol::ParseData(read).value().eof);
  EXPECT_EQ(read.payload, "");
}

TEST_F(AgentFilesTest, RefusesDirectoriesAndOtherNonRegularFiles) {
  ExpectError(Read(dir_), "invalid_argument", dir_ + ": is a directory");
  ExpectError(Write(dir_, "x"), "invalid_argument", dir_ + ": is a directory");
  ExpectError(Read("/dev/null"), "invalid_argument", "/dev/null: not a regular file");

  // A FIFO must be refused, not block the agent.
  std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ExpectError(Read(fifo), "invalid_argument", fifo + ": not a regular file");
  ExpectError(Write(fifo, "x"), "invalid_argument", fifo + ": not a regular file");
  EXPECT_EQ(Request(protocol::PingFrame(++stream_)).type, protocol::kTypePong);
}

TEST_F(AgentFilesTest, RefusesRelativePathsAndReportsMissingFiles) {
  ExpectError(Read("etc/passwd"), "invalid_argument", "etc/passwd: path must be absolute");
  ExpectError(Write("x", "y"), "invalid_argument", "x: path must be absolute");
  ExpectError(Read(dir_ + "/missing"), "not_found", dir_ + "/missing: No such file or directory");
  ExpectError(Write(dir_ + "/no/such/dir/f", "y"), "not_found",
              dir_ + "/no/such/dir/f: No such file or directory");
  protocol::Frame no_path = Request(protocol::MakeFrame(protocol::kTypeReadFile, ++stream_));
  ASSERT_EQ(no_path.type, protocol::kTypeError);
  EXPECT_EQ(protocol::ParseError(no_path)->code, "invalid_argument");
}

TEST_F(AgentFilesTest, ReadsFilesWhoseSizeIsUnknown) {
  // /proc files say size 0 but have content; read until read() says EOF.
  protocol::Frame read = Read("/proc/self/status", 0, 1 << 20);
  ASSERT_EQ(read.type, protocol::kTypeData) << read.header.dump();
  EXPECT_TRUE(protocol::ParseData(read).value().eof);
  EXPECT_NE(read.payload.find("Name:"), std::string::npos);
}

}  // namespace
}  // namespace agentvm::guest
