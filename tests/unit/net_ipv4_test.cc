#include "netsetup/ipv4.h"

#include <gtest/gtest.h>

namespace agentvm::net {
namespace {

TEST(Ipv4Test, ParsesAndPrintsAddresses) {
  auto address = Ipv4Address::Parse("10.101.0.1");
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->value, 0x0a650001u);
  EXPECT_EQ(address->ToString(), "10.101.0.1");
}

TEST(Ipv4Test, RefusesMalformedAddresses) {
  for (const char* bad : {"", "10.101.0", "10.101.0.256", "010.1.1.1x", "::1", "10.0.0.1/8", " 10.0.0.1"}) {
    auto address = Ipv4Address::Parse(bad);
    EXPECT_FALSE(address.has_value()) << bad;
    if (!address) {
      EXPECT_EQ(address.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(Ipv4Test, SubnetArithmetic) {
  auto subnet = Ipv4Subnet::Parse("10.101.0.0/16");
  ASSERT_TRUE(subnet.has_value());
  EXPECT_EQ(subnet->ToString(), "10.101.0.0/16");
  EXPECT_EQ(subnet->Size(), 65536u);
  EXPECT_EQ(subnet->At(1)->ToString(), "10.101.0.1");
  EXPECT_EQ(subnet->At(258)->ToString(), "10.101.1.2");
  EXPECT_FALSE(subnet->At(65536).has_value());
  EXPECT_EQ(subnet->Broadcast().ToString(), "10.101.255.255");
  EXPECT_TRUE(subnet->Contains(*Ipv4Address::Parse("10.101.200.3")));
  EXPECT_FALSE(subnet->Contains(*Ipv4Address::Parse("10.102.0.1")));
}

TEST(Ipv4Test, WholeSpaceAndHostRoutes) {
  EXPECT_EQ(Ipv4Subnet::Parse("0.0.0.0/0")->Size(), 1ull << 32);
  EXPECT_TRUE(Ipv4Subnet::Parse("0.0.0.0/0")->Contains(*Ipv4Address::Parse("8.8.8.8")));
  EXPECT_EQ(Ipv4Subnet::Parse("192.0.2.7/32")->Size(), 1u);
}

TEST(Ipv4Test, RefusesMalformedSubnets) {
  for (const char* bad : {"10.101.0.0", "10.101.0.1/16", "10.101.0.0/33", "10.101.0.0/", "10.101.0.0/-1",
                          "10.101.0.0/1x", "x/8"}) {
    EXPECT_FALSE(Ipv4Subnet::Parse(bad).has_value()) << bad;
  }
  auto error = Ipv4Subnet::Parse("10.101.0.1/16").error();
  EXPECT_NE(error.message.find("10.101.0.0/16"), std::string::npos) << error.message;
}

TEST(Ipv4Test, Endpoints) {
  EXPECT_EQ(Ipv4Endpoint::Parse("192.0.2.1", 53)->ToString(), "192.0.2.1:53");
  EXPECT_EQ(Ipv4Endpoint::Parse("192.0.2.1:5353", 53)->ToString(), "192.0.2.1:5353");
  for (const char* bad : {"192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:x", "host:53"}) {
    EXPECT_FALSE(Ipv4Endpoint::Parse(bad, 53).has_value()) << bad;
  }
}

}  // namespace
}  // namespace agentvm::net
