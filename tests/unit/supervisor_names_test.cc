#include "supervisor/names.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

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

}  // namespace
}  // namespace agentvm
