// The firewall against the kernel's nftables, inside a network namespace of
// the test's own: what Create, AddVm, RemoveVm and the destructor leave in the
// ruleset, read back with `nft list`. Traffic through it is
// privileged_net_traffic_test.cc.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "netsetup/firewall.h"
#include "netsetup/net_names.h"
#include "tests/support/command.h"
#include "tests/support/netns.h"
#include "tests/support/temp_dir.h"

namespace agentvm::net {
namespace {

using testing::NetNamespace;
using testing::RunCommand;
using testing::RunInNetns;

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

FirewallConfig Config() {
  return FirewallConfig{.bridge = "agentvm0",
                        .subnet = *Ipv4Subnet::Parse("10.101.0.0/16"),
                        .gateway = *Ipv4Address::Parse("10.101.0.1")};
}

VmNetRules Vm1() { return VmNetRules{.tap = TapNameForVm("vm-1"), .address = *Ipv4Address::Parse("10.101.0.2")}; }

VmNetRules Vm2() {
  return VmNetRules{.tap = TapNameForVm("vm-2"),
                    .address = *Ipv4Address::Parse("10.101.0.3"),
                    .extra_tcp_ports = {8080},
                    .extra_cidrs = {*Ipv4Subnet::Parse("140.82.112.0/20")},
                    .bytes_per_second = 1'000'000};
}

class NetFirewallTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root"; }

  void TearDown() override {
    firewall_.reset();
    auto root = RunCommand({"nft", "list", "tables"}, std::chrono::seconds(10));
    EXPECT_FALSE(Has(root.out, "agentvm")) << "our tables leaked into the root namespace: " << root.out;
  }

  // `nft <args>` in the test's namespace; its stdout.
  std::string Nft(std::vector<std::string> args) {
    std::vector<std::string> argv = {"ip", "netns", "exec", netns_.name(), "nft"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = RunCommand(argv, std::chrono::seconds(10));
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  }

  void Create(FirewallConfig config = Config()) {
    RunInNetns(netns_.name(), [&] {
      auto made = Firewall::Create(config);
      ASSERT_TRUE(made.has_value()) << made.error().message;
      firewall_ = std::move(*made);
    });
    ASSERT_TRUE(firewall_);
  }

  NetNamespace netns_{"avmnet-fw"};
  std::unique_ptr<Firewall> firewall_;
};

// With a log group the refused packets are logged behind a bucket per VM
// (a set the kernel fills, one element per source address) and one for all:
// the kernel reads back the rule we describe, and the rule count stays.
TEST_F(NetFirewallTest, TheRefusedLogIsRateLimitedPerVmThenForAll) {
  FirewallConfig config = Config();
  config.refused_log_group = 7100;
  Create(config);
  const std::string ruleset = Nft({"list", "ruleset"});
  EXPECT_TRUE(Has(ruleset, "update @vm_log_rate { ip saddr timeout 1m limit rate 10/second burst 20 packets } "
                           "limit rate 50/second burst 100 packets log prefix \"avm-refused\" group 7100 snaplen 64"))
      << ruleset;
  // Each VM's bucket goes a minute after its last refused packet.
  EXPECT_TRUE(Has(ruleset, "set vm_log_rate {\n\t\ttype ipv4_addr\n\t\tsize 65536\n\t\tflags dynamic,timeout"))
      << ruleset;
  RunInNetns(netns_.name(), [&] {
    auto rules = firewall_->RuleCount();
    ASSERT_TRUE(rules.has_value()) << rules.error().message;
    EXPECT_EQ(*rules, 34u) << "33 and the log rule";
  });
}

TEST_F(NetFirewallTest, CreateBuildsBothTablesAndTheDestructorRemovesThem) {
  ASSERT_EQ(Nft({"list", "ruleset"}), "");
  Create();
  const std::string ruleset = Nft({"list", "ruleset"});
  EXPECT_TRUE(Has(ruleset, "table bridge agentvm {")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "table inet agentvm {")) << ruleset;
  for (const char* rule : {
           "iifname != @vm_taps accept",
           "iifname . ether saddr . ip saddr @vm_sources accept",
           "limit name iifname map @vm_limit_up drop",
           "limit name oifname map @vm_limit_down drop",
           "iifname \"agentvm0\" ct state established,related accept",
           "iifname \"agentvm0\" goto vm_egress",
           "oifname \"agentvm0\" drop",
           "ip saddr != @vm_addresses drop",
           "ip daddr 10.101.0.0/16 goto vm_refuse",
           "ct state new add @vm_conns { ip saddr ct count over 1024 } goto vm_refuse",
           "tcp dport @allowed_tcp ct state new accept",
           "ip saddr . tcp dport @vm_ports ct state new accept",
           "tcp dport != 53 ip saddr . ip daddr @vm_cidrs ct state new accept",
           "counter name ip saddr map @vm_drops",
           "ip daddr 10.101.0.1 udp dport 53 accept",
           "ip saddr 10.101.0.0/16 oifname != \"agentvm0\" masquerade",
           "elements = { 22, 80, 443, 9418 }",
       }) {
    EXPECT_TRUE(Has(ruleset, rule)) << "missing: " << rule << "\n" << ruleset;
  }
  // nft reads back what it printed: the ruleset is valid nft syntax too.
  testing::TempDir dir("avm-nft");
  std::ofstream(dir.path() / "ruleset.nft") << ruleset;
  EXPECT_EQ(RunCommand({"ip", "netns", "exec", netns_.name(), "nft", "-c", "-f", (dir.path() / "ruleset.nft").string()})
                .exit_code,
            0);

  RunInNetns(netns_.name(), [&] {
    auto rules = firewall_->RuleCount();
    ASSERT_TRUE(rules.has_value()) << rules.error().message;
    EXPECT_EQ(*rules, 33u);
  });
  firewall_.reset();
  EXPECT_EQ(Nft({"list", "ruleset"}), "") << "the destructor removes both tables";
}

TEST_F(NetFirewallTest, VmsAreSetElementsAndTheRulesDoNotGrow) {
  Create();
  RunInNetns(netns_.name(), [&] {
    ASSERT_TRUE(firewall_->AddVm(Vm1()).has_value());
    auto added = firewall_->AddVm(Vm2());
    ASSERT_TRUE(added.has_value()) << added.error().message;
    EXPECT_EQ(firewall_->RuleCount().value(), 33u);
    EXPECT_EQ(firewall_->DroppedPackets(Vm1().address).value(), 0u);
  });
  const std::string tap1 = "\"" + Vm1().tap + "\"";
  const std::string tap2 = "\"" + Vm2().tap + "\"";
  std::string ruleset = Nft({"list", "ruleset"});
  EXPECT_TRUE(Has(Nft({"list", "set", "bridge", "agentvm", "vm_taps"}), tap2));
  EXPECT_TRUE(Has(ruleset, tap1 + " . 02:00:0a:65:00:02 . 10.101.0.2")) << ruleset;
  EXPECT_TRUE(Has(ruleset, tap2 + " . 02:00:0a:65:00:03 . 10.101.0.3")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "10.101.0.3 . 8080")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "10.101.0.3 . 140.82.112.0/20")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "10.101.0.2 : \"drops_10_101_0_2\"")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "counter drops_10_101_0_3 {")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "limit up_" + Vm2().tap + " {")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "rate over 1000000 bytes/second")) << ruleset;
  EXPECT_TRUE(Has(ruleset, tap2 + " : \"down_" + Vm2().tap + "\"")) << ruleset;

  RunInNetns(netns_.name(), [&] {
    auto removed = firewall_->RemoveVm(Vm2().tap, Vm2().address);
    ASSERT_TRUE(removed.has_value()) << removed.error().message;
    auto again = firewall_->RemoveVm(Vm2().tap, Vm2().address);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  });
  ruleset = Nft({"list", "ruleset"});
  EXPECT_FALSE(Has(ruleset, "10.101.0.3")) << ruleset;
  EXPECT_FALSE(Has(ruleset, Vm2().tap)) << ruleset;
  EXPECT_TRUE(Has(ruleset, tap1 + " . 02:00:0a:65:00:02 . 10.101.0.2")) << "VM 1 keeps its rules\n" << ruleset;
}

TEST_F(NetFirewallTest, CreateReplacesLeftoversOfAnEarlierRun) {
  testing::TempDir dir("avm-nft");
  const auto leftover = dir.path() / "leftover.nft";
  std::ofstream(leftover) << "table inet agentvm {\n  chain junk {\n  }\n}\n"
                             "table bridge agentvm {\n  set vm_taps {\n    type ifname\n"
                             "    elements = { \"avm-old\" }\n  }\n}\n";
  ASSERT_EQ(RunCommand({"ip", "netns", "exec", netns_.name(), "nft", "-f", leftover.string()}).exit_code, 0);
  Create();
  const std::string ruleset = Nft({"list", "ruleset"});
  EXPECT_FALSE(Has(ruleset, "junk")) << ruleset;
  EXPECT_FALSE(Has(ruleset, "avm-old")) << ruleset;
  EXPECT_TRUE(Has(ruleset, "chain vm_egress")) << ruleset;

  // And without a Firewall object, as agentvmd does after a crash.
  firewall_.reset();
  ASSERT_EQ(RunCommand({"ip", "netns", "exec", netns_.name(), "nft", "-f", leftover.string()}).exit_code, 0);
  RunInNetns(netns_.name(), [&] {
    ASSERT_TRUE(Firewall::RemoveTables().has_value());
    EXPECT_TRUE(Firewall::RemoveTables().has_value()) << "nothing left to remove is fine";
  });
  EXPECT_EQ(Nft({"list", "ruleset"}), "");
}

TEST_F(NetFirewallTest, AKernelRefusalIsNamedAndAppliesNothing) {
  Create();
  // Someone made VM 1's counter by hand: adding VM 1 must fail as a whole.
  Nft({"add", "counter", "inet", "agentvm", "drops_10_101_0_2"});
  RunInNetns(netns_.name(), [&] {
    auto added = firewall_->AddVm(Vm1());
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code, ErrorCode::kConflict);
    EXPECT_TRUE(Has(added.error().message, "add counter inet agentvm drops_10_101_0_2")) << added.error().message;
    EXPECT_TRUE(Has(added.error().message, "File exists")) << added.error().message;
    EXPECT_EQ(firewall_->vm_count(), 0u);
    ASSERT_TRUE(firewall_->AddVm(Vm2()).has_value()) << "the firewall still works";
  });
  const std::string taps = Nft({"list", "set", "bridge", "agentvm", "vm_taps"});
  EXPECT_FALSE(Has(taps, Vm1().tap)) << "no element of the refused batch was applied\n" << taps;
  EXPECT_TRUE(Has(taps, Vm2().tap)) << taps;
}

}  // namespace
}  // namespace agentvm::net
