#include "supervisor/image_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kDiskBytes = 3ull << 30;

// The first 32 bytes of a qcow2 image of `size` bytes, all ImageStore reads.
void WriteQcow2Header(const fs::path& path, std::uint64_t size) {
  std::string header("QFI\xfb\0\0\0\3", 8);
  header.resize(24, '\0');
  for (int shift = 56; shift >= 0; shift -= 8) header.push_back(static_cast<char>((size >> shift) & 0xff));
  std::ofstream(path, std::ios::binary) << header;
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per process: ctest runs these tests in parallel.
    dir_ = fs::path(::testing::TempDir()) / ("agentvm-images-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tiny");
    for (const char* file : {"vmlinuz", "initrd.img"}) std::ofstream(dir_ / "tiny" / file) << "x";
    WriteQcow2Header(dir_ / "tiny" / "rootfs.qcow2", kDiskBytes);
    std::ofstream(dir_ / "tiny" / "image.json") << R"({"name": "tiny", "kernel_args": "console=ttyS0 quiet"})";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ImageStoreTest, FindsACompleteImage) {
  auto image = ImageStore(dir_).Find("tiny");
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ(image->kernel, dir_ / "tiny" / "vmlinuz");
  EXPECT_EQ(image->rootfs, dir_ / "tiny" / "rootfs.qcow2");
  EXPECT_EQ(image->kernel_args, "console=ttyS0 quiet");
  EXPECT_EQ(image->disk_bytes, kDiskBytes);  // every overlay is created with it
}

TEST_F(ImageStoreTest, ARootfsThatIsNotQcow2IsRefused) {
  std::ofstream(dir_ / "tiny" / "rootfs.qcow2") << "not an image at all, but long enough to have a header";
  auto image = ImageStore(dir_).Find("tiny");
  ASSERT_FALSE(image);
  EXPECT_NE(image.error().message.find("is not a qcow2 image"), std::string::npos) << image.error().message;
  std::ofstream(dir_ / "tiny" / "rootfs.qcow2") << "QFI";
  EXPECT_FALSE(ImageStore(dir_).Find("tiny"));
}

TEST_F(ImageStoreTest, UnknownIncompleteAndHostileNames) {
  auto unknown = ImageStore(dir_).Find("nope");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_NE(unknown.error().message.find("nope"), std::string::npos);

  fs::remove(dir_ / "tiny" / "initrd.img");
  auto incomplete = ImageStore(dir_).Find("tiny");
  ASSERT_FALSE(incomplete);
  EXPECT_NE(incomplete.error().message.find("initrd.img"), std::string::npos);

  for (const char* hostile : {"../tiny", "..", "/etc", "tiny;reboot"}) {
    auto refused = ImageStore(dir_).Find(hostile);
    ASSERT_FALSE(refused) << hostile;
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument) << hostile;
  }
}

TEST_F(ImageStoreTest, FileNamesInImageJsonCannotEscapeTheImageDir) {
  std::ofstream(dir_ / "tiny" / "image.json") << R"({"kernel": "../../../etc/passwd"})";
  auto image = ImageStore(dir_).Find("tiny");
  ASSERT_TRUE(image);
  EXPECT_EQ(image->kernel, dir_ / "tiny" / "vmlinuz");
}

TEST_F(ImageStoreTest, MalformedImageJsonIsAnError) {
  std::ofstream(dir_ / "tiny" / "image.json") << R"({"kernel": 42)";
  EXPECT_FALSE(ImageStore(dir_).Find("tiny"));
  std::ofstream(dir_ / "tiny" / "image.json") << R"({"kernel_args": 42})";
  EXPECT_FALSE(ImageStore(dir_).Find("tiny"));
}

TEST_F(ImageStoreTest, TheDefaultUsersIdsAreReadAndRootNeedsNone) {
  auto root = ImageStore(dir_).Find("tiny");
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->default_uid, 0u);
  EXPECT_EQ(root->default_gid, 0u);

  std::ofstream(dir_ / "tiny" / "image.json") << R"({"default_user": "agent", "default_uid": 1000, "default_gid": 1001})";
  auto agent = ImageStore(dir_).Find("tiny");
  ASSERT_TRUE(agent) << agent.error().message;
  EXPECT_EQ(agent->default_uid, 1000u);
  EXPECT_EQ(agent->default_gid, 1001u);

  // An older image of another user: found, with no ids (mounts refuse it).
  std::ofstream(dir_ / "tiny" / "image.json") << R"({"default_user": "agent"})";
  auto older = ImageStore(dir_).Find("tiny");
  ASSERT_TRUE(older) << older.error().message;
  EXPECT_FALSE(older->default_uid);

  for (const char* bad : {R"({"default_uid": -1})", R"({"default_uid": "1000"})", R"({"default_gid": 4294967295})"}) {
    std::ofstream(dir_ / "tiny" / "image.json") << bad;
    EXPECT_FALSE(ImageStore(dir_).Find("tiny")) << bad;
  }
}

}  // namespace
}  // namespace agentvm
