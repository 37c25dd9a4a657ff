#include "netsetup/firewall_config.h"

#include <gtest/gtest.h>

#include <string>

namespace agentvm::net {
namespace {

FirewallConfig Config() {
  return FirewallConfig{.bridge = "agentvm0",
                        .subnet = *Ipv4Subnet::Parse("10.101.0.0/16"),
                        .gateway = *Ipv4Address::Parse("10.101.0.1")};
}

VmNetRules Rules() {
  return VmNetRules{.tap = "avm-0123456789a",
                    .address = *Ipv4Address::Parse("10.101.0.2"),
                    .extra_tcp_ports = {8080, 5432},
                    .extra_cidrs = {*Ipv4Subnet::Parse("140.82.112.0/20"), *Ipv4Subnet::Parse("1.1.1.1/32")},
                    .bytes_per_second = 1'000'000};
}

// The error for `rules`, which must be refused as kInvalidArgument.
std::string Refusal(const VmNetRules& rules) {
  auto valid = ValidateVmNetRules(Config(), rules);
  if (valid) return "(accepted)";
  EXPECT_EQ(valid.error().code, ErrorCode::kInvalidArgument);
  return valid.error().message;
}

TEST(FirewallConfigTest, AcceptsTheDefaultsAndAFullVm) {
  EXPECT_TRUE(ValidateFirewallConfig(Config()).has_value());
  EXPECT_TRUE(ValidateVmNetRules(Config(), Rules()).has_value());
  VmNetRules plain{.tap = "avm-0123456789a", .address = *Ipv4Address::Parse("10.101.255.254")};
  EXPECT_TRUE(ValidateVmNetRules(Config(), plain).has_value());
}

TEST(FirewallConfigTest, RefusesBadNetworkConfig) {
  FirewallConfig config = Config();
  config.bridge = "a/b";
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value());
  config = Config();
  config.gateway = *Ipv4Address::Parse("10.102.0.1");
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value());
  config = Config();
  config.gateway = config.subnet.network;
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value());
  config = Config();
  config.allowed_tcp_ports = {80, 53};
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value());
  config.allowed_tcp_ports = {80, 80};
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value());
  config.allowed_tcp_ports = {};
  EXPECT_TRUE(ValidateFirewallConfig(config).has_value()) << "no TCP at all is a valid policy";
  config = Config();
  config.max_connections_per_vm = 0;
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value()) << "a VM that may connect nowhere is isolated mode";
  config.max_connections_per_vm = kMaxConnectionsPerVmCeiling + 1;
  EXPECT_FALSE(ValidateFirewallConfig(config).has_value());
  config.max_connections_per_vm = 1;
  EXPECT_TRUE(ValidateFirewallConfig(config).has_value());
}

TEST(FirewallConfigTest, RefusesBadPortsWithAClearReason) {
  VmNetRules rules = Rules();
  rules.extra_tcp_ports = {0};
  EXPECT_NE(Refusal(rules).find("port 0"), std::string::npos);
  rules.extra_tcp_ports = {53};
  EXPECT_NE(Refusal(rules).find("DNS goes only to the daemon's resolver"), std::string::npos);
  rules.extra_tcp_ports = {8080, 9000, 8080};
  EXPECT_NE(Refusal(rules).find("8080 is listed twice"), std::string::npos);
  rules.extra_tcp_ports.assign(kMaxExtraTcpPorts + 1, 1);
  EXPECT_NE(Refusal(rules).find("at most"), std::string::npos);
}

TEST(FirewallConfigTest, RefusesAddressesThatAreNotVmAddresses) {
  for (const char* address : {"10.102.0.2", "10.101.0.0", "10.101.0.1", "10.101.255.255"}) {
    VmNetRules rules = Rules();
    rules.address = *Ipv4Address::Parse(address);
    EXPECT_NE(Refusal(rules).find("is not a VM address"), std::string::npos) << address;
  }
}

TEST(FirewallConfigTest, RefusesCidrsIntoTheSubnetOrOverlapping) {
  VmNetRules rules = Rules();
  rules.extra_cidrs = {*Ipv4Subnet::Parse("10.0.0.0/8")};
  EXPECT_NE(Refusal(rules).find("overlaps the VMs' own subnet"), std::string::npos);
  rules.extra_cidrs = {*Ipv4Subnet::Parse("10.101.7.0/24")};
  EXPECT_NE(Refusal(rules).find("overlaps the VMs' own subnet"), std::string::npos);
  rules.extra_cidrs = {*Ipv4Subnet::Parse("0.0.0.0/0")};
  EXPECT_NE(Refusal(rules).find("0.0.0.0/0"), std::string::npos);
  rules.extra_cidrs = {*Ipv4Subnet::Parse("140.82.0.0/16"), *Ipv4Subnet::Parse("140.82.112.0/20")};
  EXPECT_NE(Refusal(rules).find("overlap"), std::string::npos);
  rules.extra_cidrs = {Ipv4Subnet{*Ipv4Address::Parse("1.2.3.4"), 24}};  // host bits, built by hand
  EXPECT_NE(Refusal(rules).find("malformed"), std::string::npos);
}

TEST(FirewallConfigTest, RefusesBadTapMacAndBandwidth) {
  VmNetRules rules = Rules();
  rules.tap = "tap name";
  EXPECT_NE(Refusal(rules).find("invalid tap name"), std::string::npos);
  rules = Rules();
  rules.mac = "02:00:0a:65:00";
  EXPECT_NE(Refusal(rules).find("MAC"), std::string::npos);
  rules.mac = "01:00:5e:00:00:01";
  EXPECT_NE(Refusal(rules).find("multicast"), std::string::npos);
  rules = Rules();
  rules.bytes_per_second = 100;
  EXPECT_NE(Refusal(rules).find("below the minimum"), std::string::npos);
}

TEST(FirewallConfigTest, EffectiveMacDefaultsToTheLease) {
  VmNetRules rules = Rules();
  EXPECT_EQ(EffectiveMac(rules), "02:00:0a:65:00:02");
  rules.mac = "52:54:00:12:34:56";
  EXPECT_EQ(EffectiveMac(rules), "52:54:00:12:34:56");
}

}  // namespace
}  // namespace agentvm::net
