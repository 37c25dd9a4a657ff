// netsetup's links against the kernel: the bridge, taps and forwarding, each
// test inside a network namespace of its own (entered by one thread only, so
// the rest of the test binary stays in the root namespace).
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "netsetup/links.h"
#include "netsetup/net_names.h"
#include "netsetup/tap.h"
#include "tests/support/command.h"
#include "tests/support/netns.h"

namespace agentvm::net {
namespace {

using testing::NetNamespace;
using testing::RunCommand;
using testing::RunInNetns;

// `ip -j <args>` in namespace `ns`, parsed.
nlohmann::json IpJson(const std::string& ns, std::vector<std::string> args) {
  std::vector<std::string> argv = {"ip", "-n", ns, "-j"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto result = RunCommand(argv, std::chrono::seconds(10));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  auto parsed = nlohmann::json::parse(result.out, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json::array() : parsed;
}

bool HasFlag(const nlohmann::json& link, const std::string& flag) {
  for (const auto& f : link.value("flags", nlohmann::json::array())) {
    if (f == flag) return true;
  }
  return false;
}

class NetLinksTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root"; }

  void TearDown() override {
    // Nothing of ours may have leaked into the root namespace.
    auto links = RunCommand({"ip", "-o", "link", "show"}, std::chrono::seconds(10));
    EXPECT_EQ(links.out.find(kBridge), std::string::npos) << links.out;
    EXPECT_EQ(links.out.find(": avm-"), std::string::npos) << links.out;
  }

  static constexpr const char* kBridge = "agentvm0";
  const Ipv4Address gateway_ = *Ipv4Address::Parse("10.101.0.1");
  NetNamespace netns_{"avmnet-links"};
};

TEST_F(NetLinksTest, BridgeIsCreatedAddressedAndUpOnce) {
  RunInNetns(netns_.name(), [&] {
    EXPECT_EQ(LinkExists(kBridge).value(), false);
    auto created = EnsureBridge(kBridge, gateway_, 16);
    ASSERT_TRUE(created.has_value()) << created.error().message;
    EXPECT_TRUE(*created);
    auto again = EnsureBridge(kBridge, gateway_, 16);
    ASSERT_TRUE(again.has_value()) << again.error().message;
    EXPECT_FALSE(*again) << "an existing bridge is used, not created";
    EXPECT_EQ(LinkExists(kBridge).value(), true);
  });
  auto links = IpJson(netns_.name(), {"-d", "link", "show", "dev", kBridge});
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0]["linkinfo"]["info_kind"], "bridge");
  EXPECT_TRUE(HasFlag(links[0], "UP")) << links.dump();
  EXPECT_EQ(RunCommand({"ip", "netns", "exec", netns_.name(), "cat", "/proc/sys/net/ipv6/conf/agentvm0/disable_ipv6"})
                .out,
            "1\n")
      << "VMs get no IPv6, so neither does the bridge";
  auto addresses = IpJson(netns_.name(), {"-4", "addr", "show", "dev", kBridge});
  ASSERT_EQ(addresses.size(), 1u);
  ASSERT_EQ(addresses[0]["addr_info"].size(), 1u) << "the second call added nothing: " << addresses.dump();
  EXPECT_EQ(addresses[0]["addr_info"][0]["local"], "10.101.0.1");
  EXPECT_EQ(addresses[0]["addr_info"][0]["prefixlen"], 16);

  RunInNetns(netns_.name(), [&] {
    ASSERT_TRUE(DeleteLink(kBridge).has_value());
    EXPECT_EQ(LinkExists(kBridge).value(), false);
    auto gone = DeleteLink(kBridge);
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  });
}

TEST_F(NetLinksTest, EnsureBridgeRefusesALinkThatIsNoBridge) {
  ASSERT_EQ(RunCommand({"ip", "-n", netns_.name(), "link", "add", "notabridge", "type", "veth", "peer", "name",
                        "peer0"}).exit_code, 0);
  RunInNetns(netns_.name(), [&] {
    auto ensured = EnsureBridge("notabridge", gateway_, 16);
    ASSERT_FALSE(ensured.has_value());
    EXPECT_EQ(ensured.error().code, ErrorCode::kConflict);
    EXPECT_EQ(EnsureBridge("bad/name", gateway_, 16).error().code, ErrorCode::kInvalidArgument);
  });
  auto addresses = IpJson(netns_.name(), {"addr", "show", "dev", "notabridge"});
  ASSERT_EQ(addresses.size(), 1u);
  for (const auto& address : addresses[0]["addr_info"]) {
    EXPECT_NE(address["family"], "inet") << "the veth was left alone: " << addresses.dump();
  }
}

TEST_F(NetLinksTest, TapIsEnslavedIsolatedUpAndGoesWithItsFd) {
  const std::string tap_name = TapNameForVm("vm-1");
  RunInNetns(netns_.name(), [&] {
    ASSERT_TRUE(EnsureBridge(kBridge, gateway_, 16).has_value());
    auto tap = Tap::Create(tap_name, kBridge, /*isolated_port=*/true);
    ASSERT_TRUE(tap.has_value()) << tap.error().message;
    EXPECT_GE(tap->fd(), 0);
    EXPECT_EQ(tap->name(), tap_name);

    auto links = IpJson(netns_.name(), {"-d", "link", "show", "dev", tap_name});
    ASSERT_EQ(links.size(), 1u);
    EXPECT_EQ(links[0]["master"], kBridge);
    EXPECT_TRUE(HasFlag(links[0], "UP")) << links.dump();
    EXPECT_EQ(links[0]["linkinfo"]["info_kind"], "tun");
    EXPECT_EQ(links[0]["linkinfo"]["info_data"]["type"], "tap");
    EXPECT_EQ(links[0]["linkinfo"]["info_data"]["pi"], false);
    EXPECT_EQ(links[0]["linkinfo"]["info_data"]["vnet_hdr"], true);
    EXPECT_EQ(links[0]["linkinfo"]["info_data"]["persist"], false);
    EXPECT_EQ(links[0]["linkinfo"]["info_slave_data"]["isolated"], true) << links.dump();

    Tap moved = std::move(*tap);  // a moved-from Tap owns nothing
    EXPECT_EQ(tap->fd(), -1);
    EXPECT_EQ(LinkExists(tap_name).value(), true);
    { Tap gone = std::move(moved); }
    EXPECT_EQ(LinkExists(tap_name).value(), false) << "closing the last fd removes the tap";
  });
}

TEST_F(NetLinksTest, TapOnAnOperatorBridgeIsNotIsolated) {
  RunInNetns(netns_.name(), [&] {
    ASSERT_TRUE(EnsureBridge("opbr0", gateway_, 16).has_value());
    auto tap = Tap::Create("avm-plain", "opbr0", /*isolated_port=*/false);
    ASSERT_TRUE(tap.has_value()) << tap.error().message;
    auto links = IpJson(netns_.name(), {"-d", "link", "show", "dev", "avm-plain"});
    ASSERT_EQ(links.size(), 1u);
    EXPECT_EQ(links[0]["master"], "opbr0");
    EXPECT_EQ(links[0]["linkinfo"]["info_slave_data"]["isolated"], false);
  });
}

TEST_F(NetLinksTest, TapLeavesAnExistingInterfaceAlone) {
  RunInNetns(netns_.name(), [&] {
    ASSERT_TRUE(EnsureBridge(kBridge, gateway_, 16).has_value());
    auto first = Tap::Create("avm-same", kBridge, true);
    ASSERT_TRUE(first.has_value()) << first.error().message;
    auto second = Tap::Create("avm-same", kBridge, true);
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error().code, ErrorCode::kConflict);
    EXPECT_EQ(LinkExists("avm-same").value(), true) << "the first tap survives the failed second";
    // Not a tap at all: a veth of that name.
    ASSERT_EQ(RunCommand({"ip", "-n", netns_.name(), "link", "add", "avm-veth", "type", "veth", "peer", "name",
                          "avm-peer"}).exit_code, 0);
    auto over_veth = Tap::Create("avm-veth", kBridge, true);
    ASSERT_FALSE(over_veth.has_value());
    EXPECT_EQ(over_veth.error().code, ErrorCode::kConflict);
  });
  auto veth = IpJson(netns_.name(), {"-d", "link", "show", "dev", "avm-veth"});
  ASSERT_EQ(veth.size(), 1u);
  EXPECT_FALSE(veth[0].contains("master")) << "not enslaved: " << veth.dump();
}

TEST_F(NetLinksTest, FailedTapLeavesNothingBehind) {
  RunInNetns(netns_.name(), [&] {
    auto tap = Tap::Create("avm-nobridge", "nosuchbridge", true);
    ASSERT_FALSE(tap.has_value());
    EXPECT_EQ(tap.error().code, ErrorCode::kNotFound);
    EXPECT_EQ(LinkExists("avm-nobridge").value(), false);
    EXPECT_EQ(Tap::Create("avm-bad name", kBridge, true).error().code, ErrorCode::kInvalidArgument);
  });
}

TEST_F(NetLinksTest, ForwardingIsPerNamespace) {
  auto root_before = RunCommand({"cat", "/proc/sys/net/ipv4/ip_forward"});
  RunInNetns(netns_.name(), [&] { ASSERT_TRUE(EnableIpv4Forwarding().has_value()); });
  auto inside = RunCommand({"ip", "netns", "exec", netns_.name(), "cat", "/proc/sys/net/ipv4/ip_forward"});
  EXPECT_EQ(inside.out, "1\n");
  EXPECT_EQ(RunCommand({"cat", "/proc/sys/net/ipv4/ip_forward"}).out, root_before.out);
}

}  // namespace
}  // namespace agentvm::net
