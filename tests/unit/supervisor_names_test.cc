#include "supervisor/names.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

using namespace std::string_literals;

TEST(NamesTest, VmIds) {
  for (const char* ok : {"vm-0123456789ab", "a", "0", "abc-def"}) EXPECT_TRUE(IsValidVmId(ok)) << ok;
  for (const std::string& bad : std::vector<std::string>{"", "-vm", "VM-1", "../etc", "a/b", "a b", "$(reboot)", "a;b", "vm_1", "a\nb",
                          std::string("a\0b", 3), std::string(65, 'a'), std::string(4096, 'x')}) {
    EXPECT_FALSE(IsValidVmId(bad)) << bad;
  }
}

TEST(NamesTest, ImageNames) {
  for (const char* ok : {"tiny", "debian-12", "a.b_c"}) EXPECT_TRUE(IsValidImageName(ok)) << ok;
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "../tiny", "/tiny", ".hidden", "Tiny", "a b", std::string(65, 'a')}) {
    EXPECT_FALSE(IsValidImageName(bad)) << bad;
  }
}

TEST(NamesTest, ValidateVmIdRefusesWithKInvalidArgument) {
  for (std::string id : {"vm-1"s, "a"s, "0"s, "abc-def-123"s, std::string(64, 'a')}) {
    EXPECT_TRUE(ValidateVmId(id)) << id;
  }
  for (std::string id : {""s, "-a"s, "A"s, "vm_1"s, "vm.1"s, ".."s, "../x"s, "a/b"s, "a;rm -rf /"s,
                         "a$(id)"s, "a`id`"s, "a\0b"s, std::string(65, 'a'), std::string(4096, 'x'),
                         "vm-1\n"s}) {
    auto result = ValidateVmId(id);
    ASSERT_FALSE(result) << id;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(NamesTest, ValidateImageName) {
  for (std::string name : {"tiny", "debian-12", "img_1.2"}) EXPECT_TRUE(ValidateImageName(name));
  for (std::string name : {""s, "."s, ".."s, "../tiny"s, ".hidden"s, "Tiny"s, "a/b"s, "a b"s,
                           std::string(65, 'a')}) {
    EXPECT_FALSE(ValidateImageName(name)) << name;
  }
}

TEST(NamesTest, ErrorsQuoteTheNameAndSayWhatIsExpected) {
  EXPECT_EQ(ValidateVmId("a b").error().message,
            "invalid VM id \"a b\": expected 1-64 characters of [a-z0-9-], starting with a letter or digit");
  EXPECT_EQ(ValidateImageName("../x").error().message,
            "invalid image name \"../x\": expected 1-64 characters of [a-z0-9._-], starting with a letter or "
            "digit");
  EXPECT_NE(ValidateImageName("a\x1b[2J").error().message.find("\"a\\x1b[2J\""), std::string::npos);
}

TEST(NamesTest, SnapshotNames) {
  for (std::string name : {"s"s, "before-upgrade"s, "Build_42"s, "v1.2.3"s, "0a"s, "a..b"s,
                           std::string(64, 'n')}) {
    EXPECT_TRUE(ValidateSnapshotName(name)) << name;
  }
  // All digits: QEMU would take "1" for a snapshot id.
  for (std::string name : {""s, "0"s, "12"s, "."s, ".."s, ".hidden"s, "-rf"s, "a/b"s, "../x"s, "a b"s, "a\0b"s,
                           "a;reboot"s, "a$(id)"s, "\xc3\xa9t\xc3\xa9"s, "a\n"s,
                           std::string(65, 'n'), std::string(4096, 'x')}) {
    auto result = ValidateSnapshotName(name);
    ASSERT_FALSE(result) << name.substr(0, 40);
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find("invalid snapshot name"), std::string::npos);
    EXPECT_LT(result.error().message.size(), 300u);
  }
}

}  // namespace
}  // namespace agentvm
