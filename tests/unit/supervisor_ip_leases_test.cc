#include "supervisor/ip_leases.h"

#include <gtest/gtest.h>

namespace agentvm {
namespace {

class IpLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = StateStore::Open(":memory:");
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    store_ = std::move(*opened);
  }
  IpLeases Leases(const char* subnet, const char* gateway) {
    return IpLeases(*store_, *net::Ipv4Subnet::Parse(subnet), *net::Ipv4Address::Parse(gateway));
  }
  std::unique_ptr<StateStore> store_;
};

TEST_F(IpLeasesTest, SkipsTheGatewayAndGivesEachVmItsOwnAddress) {
  IpLeases leases = Leases("10.101.0.0/16", "10.101.0.1");
  EXPECT_EQ(leases.Acquire("vm-a")->ToString(), "10.101.0.2");
  EXPECT_EQ(leases.Acquire("vm-b")->ToString(), "10.101.0.3");
  // Asking again returns the same lease rather than a second one.
  EXPECT_EQ(leases.Acquire("vm-a")->ToString(), "10.101.0.2");
  EXPECT_EQ(store_->ListLeases()->size(), 2u);
}

TEST_F(IpLeasesTest, ReleasedAddressesAreReusedLast) {
  // A /29: network .0, gateway .1, VM addresses .2 to .6, broadcast .7.
  IpLeases leases = Leases("192.168.7.0/29", "192.168.7.1");
  ASSERT_EQ(leases.Acquire("vm-a")->ToString(), "192.168.7.2");
  ASSERT_EQ(leases.Acquire("vm-b")->ToString(), "192.168.7.3");
  ASSERT_TRUE(leases.Release("vm-a").has_value());
  // The freed .2 waits while unused addresses remain...
  EXPECT_EQ(leases.Acquire("vm-c")->ToString(), "192.168.7.4");
  EXPECT_EQ(leases.Acquire("vm-d")->ToString(), "192.168.7.5");
  EXPECT_EQ(leases.Acquire("vm-e")->ToString(), "192.168.7.6");
  // ...and comes back once the search wraps around.
  EXPECT_EQ(leases.Acquire("vm-f")->ToString(), "192.168.7.2");
  EXPECT_EQ(leases.Acquire("vm-g").error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(leases.Release("vm-never-leased").has_value());
}

TEST_F(IpLeasesTest, FullSubnetIsAClearError) {
  // A /30 has network, gateway, one VM address and broadcast.
  IpLeases leases = Leases("192.168.7.0/30", "192.168.7.1");
  EXPECT_EQ(leases.Acquire("vm-a")->ToString(), "192.168.7.2");
  auto full = leases.Acquire("vm-b");
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(full.error().message.find("192.168.7.0/30"), std::string::npos);
}

TEST_F(IpLeasesTest, LeasesSurviveInTheStore) {
  ASSERT_TRUE(Leases("10.101.0.0/16", "10.101.0.1").Acquire("vm-a").has_value());
  ASSERT_TRUE(Leases("10.101.0.0/16", "10.101.0.1").Acquire("vm-b").has_value());
  ASSERT_TRUE(store_->DeleteLease("vm-a").has_value());
  // A new allocator over the same store (a restarted daemon) sees the
  // remaining lease and starts after it, not at the address just freed.
  EXPECT_EQ(Leases("10.101.0.0/16", "10.101.0.1").Acquire("vm-c")->ToString(), "10.101.0.4");
}

TEST_F(IpLeasesTest, StoreRefusesADoubleLease) {
  ASSERT_TRUE(store_->PutLease({"10.101.0.9", "vm-a"}).has_value());
  auto again = store_->PutLease({"10.101.0.9", "vm-b"});
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
}

}  // namespace
}  // namespace agentvm
