#include "supervisor/image_store.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / "agentvm-images-test";
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tiny");
    for (const char* file : {"vmlinuz", "initrd.img", "rootfs.qcow2"}) std::ofstream(dir_ / "tiny" / file) << "x";
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

}  // namespace
}  // namespace agentvm
