// Memory templates (memory_template.h): a golden VM's RAM goes to a sparse
// file and comes back as a sealed memfd that clones map copy-on-write and
// nobody can change.
#include "supervisor/memory_template.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kRamBytes = 8u << 20;
constexpr std::uint64_t kPage = 4096;

class MemoryTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("agentvm-memory-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Guest RAM as a booted guest leaves it: a few pages written, the rest never touched.
  UniqueFd Ram() {
    auto ram = GuestRamMemfd(kRamBytes);
    EXPECT_TRUE(ram) << ram.error().message;
    for (std::uint64_t page : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{700}, kRamBytes / kPage - 1}) {
      const std::string text = "page " + std::to_string(page);
      EXPECT_EQ(::pwrite(ram->get(), text.data(), text.size(), static_cast<off_t>(page * kPage)),
                static_cast<ssize_t>(text.size()));
    }
    return std::move(*ram);
  }

  fs::path file() const { return dir_ / "memory"; }
  fs::path dir_;
};

std::string ReadAt(int fd, std::uint64_t offset, std::size_t n) {
  std::string out(n, '\0');
  EXPECT_EQ(::pread(fd, out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  return out;
}

TEST_F(MemoryTemplateTest, RamRoundTripsThroughASparseFileIntoASealedTemplate) {
  UniqueFd ram = Ram();
  auto written = WriteMemoryFile(ram.get(), file());
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(written->size, kRamBytes);
  EXPECT_EQ(written->checksum, DigestFile(file())->checksum);
  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kRamBytes);
  // Four pages written, the rest holes: far below the logical size.
  EXPECT_LE(static_cast<std::uint64_t>(st.st_blocks) * 512, 64 * kPage);

  auto loaded = LoadMemoryTemplate(file(), written->size, written->checksum);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ((*loaded)->size(), kRamBytes);
  EXPECT_EQ(ReadAt((*loaded)->fd(), 700 * kPage, 8), "page 700");
  EXPECT_EQ(ReadAt((*loaded)->fd(), 2 * kPage, 4), std::string(4, '\0'));
  EXPECT_EQ(::fcntl((*loaded)->fd(), F_GET_SEALS),
            F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

TEST_F(MemoryTemplateTest, NobodyCanChangeTheTemplateButAPrivateMappingCopiesOnWrite) {
  UniqueFd ram = Ram();
  auto written = WriteMemoryFile(ram.get(), file());
  ASSERT_TRUE(written);
  auto loaded = LoadMemoryTemplate(file(), written->size, written->checksum);
  ASSERT_TRUE(loaded) << loaded.error().message;
  const int fd = (*loaded)->fd();

  // Refused to everyone (this test may run as root): write, truncate, punch
  // a hole, a shared writable mapping, and lifting the seals.
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(fd, 0), 0);
  EXPECT_NE(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, kPage), 0);
  EXPECT_EQ(::mmap(nullptr, kRamBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_NE(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
  // Nor through a new open of the same memfd, as QEMU opens it (/proc/self/fd/N).
  const std::string by_path = "/proc/self/fd/" + std::to_string(fd);
  UniqueFd reopened(::open(by_path.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(reopened) << std::strerror(errno);
  EXPECT_EQ(::pwrite(reopened.get(), "x", 1, 0), -1);

  // What a clone does: map it private and write; the template keeps its bytes.
  void* map = ::mmap(nullptr, kRamBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, reopened.get(), 0);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
  auto* bytes = static_cast<char*>(map);
  EXPECT_EQ(std::string(bytes + kPage, 6), "page 1");
  std::memcpy(bytes + kPage, "CLONE!", 6);
  std::memcpy(bytes + 5 * kPage, "hole written", 12);
  EXPECT_EQ(std::string(bytes + kPage, 6), "CLONE!");
  ::munmap(map, kRamBytes);
  EXPECT_EQ(ReadAt(fd, kPage, 6), "page 1");
  EXPECT_EQ(ReadAt(fd, 5 * kPage, 12), std::string(12, '\0'));
}

TEST_F(MemoryTemplateTest, ASharedCopyHasTheTemplatesBytesAndWritesToItStayInTheCopy) {
  UniqueFd ram = Ram();
  auto written = WriteMemoryFile(ram.get(), file());
  ASSERT_TRUE(written);
  auto loaded = LoadMemoryTemplate(file(), written->size, written->checksum);
  ASSERT_TRUE(loaded) << loaded.error().message;
  auto copy = SharedCopyOfTemplate(**loaded);
  ASSERT_TRUE(copy) << copy.error().message;
  struct stat st {};
  ASSERT_EQ(::fstat(copy->get(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kRamBytes);
  EXPECT_LE(static_cast<std::uint64_t>(st.st_blocks) * 512, 64 * kPage) << "zero pages stay holes";
  EXPECT_EQ(::fcntl(copy->get(), F_GET_SEALS), F_SEAL_SEAL) << "not sealable, not sealed";

  // What virtiofsd and QEMU do: map it shared and write; the template keeps its bytes.
  void* map = ::mmap(nullptr, kRamBytes, PROT_READ | PROT_WRITE, MAP_SHARED, copy->get(), 0);
  ASSERT_NE(map, MAP_FAILED) << std::strerror(errno);
  auto* bytes = static_cast<char*>(map);
  EXPECT_EQ(std::string(bytes + 700 * kPage, 8), "page 700");
  std::memcpy(bytes + kPage, "CLONE!", 6);
  ::munmap(map, kRamBytes);
  EXPECT_EQ(ReadAt(copy->get(), kPage, 6), "CLONE!");
  EXPECT_EQ(ReadAt((*loaded)->fd(), kPage, 6), "page 1");
}

TEST_F(MemoryTemplateTest, ACorruptedOrResizedFileIsRefusedWithTheReason) {
  UniqueFd ram = Ram();
  auto written = WriteMemoryFile(ram.get(), file());
  ASSERT_TRUE(written);
  {
    UniqueFd out(::open(file().c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(::pwrite(out.get(), "X", 1, 700 * kPage + 2), 1);
  }
  auto corrupted = LoadMemoryTemplate(file(), written->size, written->checksum);
  ASSERT_FALSE(corrupted);
  EXPECT_NE(corrupted.error().message.find("memory checksum"), std::string::npos) << corrupted.error().message;

  fs::resize_file(file(), kRamBytes / 2);
  auto truncated = LoadMemoryTemplate(file(), written->size, written->checksum);
  ASSERT_FALSE(truncated);
  EXPECT_NE(truncated.error().message.find("recorded"), std::string::npos) << truncated.error().message;

  auto missing = LoadMemoryTemplate(dir_ / "nothing", written->size, written->checksum);
  EXPECT_FALSE(missing);
}

TEST_F(MemoryTemplateTest, WriteMemoryFileNeverOverwrites) {
  UniqueFd ram = Ram();
  ASSERT_TRUE(WriteMemoryFile(ram.get(), file()));
  EXPECT_FALSE(WriteMemoryFile(ram.get(), file()));
}

}  // namespace
}  // namespace agentvm
