#include "netsetup/net_names.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace agentvm::net {
namespace {

TEST(NetNamesTest, TapNameIsStableAndShort) {
  const std::string name = TapNameForVm("vm-1");
  EXPECT_EQ(name, "avm-600d97101a6");  // FNV-1a 64 of "vm-1", low 44 bits
  EXPECT_EQ(TapNameForVm("vm-1"), name);
  EXPECT_NE(TapNameForVm("vm-2"), name);
  EXPECT_EQ(name.size(), 15u);
}

TEST(NetNamesTest, TapNameIsValidWhateverTheId) {
  const std::string long_id(1000, 'x');
  std::set<std::string> names;
  for (std::string id : {std::string(), std::string("../../etc"), std::string("a b\tc"), std::string("vm:1/2"),
                         std::string("\xc3\xa9t\xc3\xa9"), std::string(1, '\0'), long_id}) {
    const std::string name = TapNameForVm(id);
    EXPECT_TRUE(IsValidLinkName(name)) << name;
    EXPECT_EQ(name.rfind("avm-", 0), 0u) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 7u);
}

TEST(NetNamesTest, MacFollowsTheAddress) {
  EXPECT_EQ(MacForAddress(*Ipv4Address::Parse("10.101.0.2")), "02:00:0a:65:00:02");
  EXPECT_EQ(MacForAddress(*Ipv4Address::Parse("192.168.255.254")), "02:00:c0:a8:ff:fe");
  unsigned char mac[6];
  ASSERT_TRUE(ParseMac(MacForAddress(*Ipv4Address::Parse("10.101.0.2")), mac));
  EXPECT_EQ(mac[0] & 1, 0) << "unicast";
  EXPECT_EQ(mac[0] & 2, 2) << "locally administered";
}

TEST(NetNamesTest, LinkNames) {
  for (const char* good : {"agentvm0", "avm-0123456789a", "br-x.1", "a"}) EXPECT_TRUE(IsValidLinkName(good)) << good;
  for (const char* bad : {"", ".", "..", "sixteen-chars-xx", "a/b", "a:b", "a b", "a\nb", "é"}) {
    EXPECT_FALSE(IsValidLinkName(bad)) << bad;
  }
}

TEST(NetNamesTest, ParsesMacs) {
  unsigned char mac[6];
  ASSERT_TRUE(ParseMac("02:00:0A:65:00:ff", mac));
  EXPECT_EQ(mac[2], 0x0a);
  EXPECT_EQ(mac[5], 0xff);
  for (const char* bad : {"", "02:00:0a:65:00", "02:00:0a:65:00:0g", "02-00-0a-65-00-02", "02:00:0a:65:00:022"}) {
    EXPECT_FALSE(ParseMac(bad, mac)) << bad;
  }
}

}  // namespace
}  // namespace agentvm::net
