// OverlayCreator: qemu-img makes the first overlay of each (backing, size),
// later ones are byte copies of it. A fake qemu-img (a shell script) records
// each run, so the test sees which overlays were copies.
#include "supervisor/overlay_creator.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "tests/support/coroutine_runner.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class OverlayCreatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("overlay-creator-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Like `qemu-img create ... -b BACKING OVERLAY SIZE`: a qcow2 magic, then
    // what it was asked for; one line per run in runs.log.
    fake_ = dir_ / "qemu-img";
    std::ofstream(fake_) << "#!/bin/sh\n"
                            "eval overlay=\\${$(($# - 1))}; eval size=\\${$#}; eval backing=\\${$(($# - 2))}\n"
                            "printf 'QFI\\373 %s %s' \"$backing\" \"$size\" > \"$overlay\"\n"
                            "echo run >> " + (dir_ / "runs.log").string() + "\n";
    fs::permissions(fake_, fs::perms::owner_all);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<void> Create(OverlayCreator& creator, const std::string& backing, std::uint64_t size,
                      const std::string& name) {
    return runner_.Run(creator.Create(backing, size, (dir_ / name).string(), (dir_ / "qemu-img.log").string()));
  }

  boost::asio::io_context io_;
  testing::CoroutineRunner runner_{io_};
  fs::path dir_;
  fs::path fake_;
};

TEST_F(OverlayCreatorTest, TheFirstOverlayOfABackingIsQemuImgsAndTheNextAreItsBytes) {
  OverlayCreator creator(io_.get_executor(), fake_.string());
  ASSERT_TRUE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "one.qcow2"));
  ASSERT_TRUE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "two.qcow2"));
  ASSERT_TRUE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "three.qcow2"));
  EXPECT_EQ(creator.qemu_img_runs(), 1u);
  EXPECT_EQ(Slurp(dir_ / "one.qcow2"), "QFI\xfb /golden/a/disk.qcow2 1073741824");
  EXPECT_EQ(Slurp(dir_ / "two.qcow2"), Slurp(dir_ / "one.qcow2"));
  EXPECT_EQ(Slurp(dir_ / "three.qcow2"), Slurp(dir_ / "one.qcow2"));
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "two.qcow2").c_str(), &st), 0);
  const mode_t umask = ::umask(0);
  ::umask(umask);
  EXPECT_EQ(st.st_mode & 0777, 0644u & ~umask) << "as qemu-img makes it";
}

TEST_F(OverlayCreatorTest, AnotherBackingOrSizeRunsQemuImgAgain) {
  OverlayCreator creator(io_.get_executor(), fake_.string());
  ASSERT_TRUE(Create(creator, "/images/tiny/rootfs.qcow2", 1 << 30, "a.qcow2"));
  ASSERT_TRUE(Create(creator, "/images/debian/rootfs.qcow2", 1 << 30, "b.qcow2"));
  ASSERT_TRUE(Create(creator, "/images/tiny/rootfs.qcow2", 2ull << 30, "c.qcow2"));
  EXPECT_EQ(creator.qemu_img_runs(), 3u);
  EXPECT_EQ(Slurp(dir_ / "b.qcow2"), "QFI\xfb /images/debian/rootfs.qcow2 1073741824");
  EXPECT_EQ(Slurp(dir_ / "c.qcow2"), "QFI\xfb /images/tiny/rootfs.qcow2 2147483648");
}

TEST_F(OverlayCreatorTest, AnExistingFileIsNeverOverwritten) {
  OverlayCreator creator(io_.get_executor(), fake_.string());
  ASSERT_TRUE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "one.qcow2"));
  std::ofstream(dir_ / "taken.qcow2") << "someone else's";
  auto again = Create(creator, "/golden/a/disk.qcow2", 1 << 30, "taken.qcow2");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("File exists"), std::string::npos) << again.error().message;
  EXPECT_EQ(Slurp(dir_ / "taken.qcow2"), "someone else's");
}

TEST_F(OverlayCreatorTest, WhatIsNotAQcow2IsNotKept) {
  std::ofstream(fake_) << "#!/bin/sh\neval overlay=\\${$(($# - 1))}\nprintf 'garbage' > \"$overlay\"\n";
  OverlayCreator creator(io_.get_executor(), fake_.string());
  ASSERT_TRUE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "one.qcow2"));
  ASSERT_TRUE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "two.qcow2"));
  EXPECT_EQ(creator.qemu_img_runs(), 2u);
}

TEST_F(OverlayCreatorTest, AFailedQemuImgFailsTheCreate) {
  std::ofstream(fake_) << "#!/bin/sh\necho 'no space' >&2\nexit 1\n";
  OverlayCreator creator(io_.get_executor(), fake_.string());
  EXPECT_FALSE(Create(creator, "/golden/a/disk.qcow2", 1 << 30, "one.qcow2"));
  EXPECT_FALSE(Create(creator, "/golden/a/disk.qcow2", 0, "two.qcow2")) << "no size";
}

}  // namespace
}  // namespace agentvm
