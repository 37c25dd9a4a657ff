// agentvm net: its flags (checked like run's, with their own names in the
// messages) and how they turn the VM's current policy into one update.
#include "cli/net_command.h"

#include <gtest/gtest.h>

#include "cli/cli_args.h"

namespace agentvm::cli {
namespace {

std::expected<CliCommand, UsageError> ParseArgs(std::vector<std::string> args) {
  return ParseCli(args, "", [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
}

TEST(CliNetTest, FlagsAreRepeatableAndCanonical) {
  auto net = ParseArgs({"net", "vm-1", "--allow-domain", "API.Anthropic.com.", "--deny-domain=*.NPMjs.org",
                        "--allow-port", "8080", "--deny-port", "22", "--allow-cidr", "203.0.113.0/24",
                        "--deny-cidr", "198.51.100.0/24", "--bandwidth", "10M"});
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_EQ(net->kind, CommandKind::kNet);
  EXPECT_EQ(net->ids, std::vector<std::string>{"vm-1"});
  EXPECT_EQ(net->net.allow_domains, std::vector<std::string>{"api.anthropic.com"});
  EXPECT_EQ(net->net.deny_domains, std::vector<std::string>{"*.npmjs.org"});
  EXPECT_EQ(net->net.allow_ports, std::vector<std::uint16_t>{8080});
  EXPECT_EQ(net->net.deny_ports, std::vector<std::uint16_t>{22});
  EXPECT_EQ(net->net.allow_cidrs, std::vector<std::string>{"203.0.113.0/24"});
  EXPECT_EQ(net->net.deny_cidrs, std::vector<std::string>{"198.51.100.0/24"});
  EXPECT_EQ(net->net.bandwidth, std::optional<std::optional<std::uint64_t>>(10'000'000));
  auto unlimited = ParseArgs({"net", "vm-1", "--no-bandwidth"});
  ASSERT_TRUE(unlimited) << unlimited.error().message;
  ASSERT_TRUE(unlimited->net.bandwidth.has_value());
  EXPECT_FALSE(unlimited->net.bandwidth->has_value());
  auto presets = ParseArgs({"net", "vm-1", "--preset", "github", "--no-preset=npm", "--preset", "pypi"});
  ASSERT_TRUE(presets) << presets.error().message;
  EXPECT_EQ(presets->net.presets, (std::vector<std::string>{"github", "pypi"}));
  EXPECT_EQ(presets->net.no_presets, std::vector<std::string>{"npm"});
  auto show = ParseArgs({"net", "vm-1"});
  ASSERT_TRUE(show) << show.error().message;
}

TEST(CliNetTest, BadFlagsAreUsageErrorsNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"net"}, "missing the VM id"},
      {{"net", "vm-1", "vm-2"}, "unexpected argument \"vm-2\""},
      {{"net", "vm-1", "--deny-port", "0"}, "--deny-port expects a TCP port"},
      {{"net", "vm-1", "--allow-domain", "*.com"}, "--allow-domain: \"*.com\" would admit a whole top-level domain"},
      {{"net", "vm-1", "--deny-cidr", "10.0.0.1/8"}, "--deny-cidr: \"10.0.0.1/8\" has host bits set"},
      {{"net", "vm-1", "--bandwidth", "10"}, "--bandwidth"},
      {{"net", "vm-1", "--net", "isolated"}, "unknown option --net"},
      {{"net", "vm-1", "--preset", "NPM"}, "--preset"},
      {{"net", "vm-1", "--no-preset"}, "--no-preset"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseArgs(c.args);
    ASSERT_FALSE(parsed) << c.args.back();
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos) << parsed.error().message;
  }
}

TEST(CliNetTest, TheFlagsEditTheCurrentListsAndOnlyChangedOnesAreSent) {
  NetworkInfo current;
  current.mode = NetworkMode::kNatFiltered;
  current.allow_domains = {"api.anthropic.com", "pypi.org"};
  current.allow_tcp_ports = {8080};
  current.bandwidth_bytes_per_sec = 1'000'000;

  NetChange change;
  change.allow_domains = {"registry.npmjs.org", "api.anthropic.com"};  // the second is there already
  change.deny_domains = {"pypi.org", "not-there.test"};
  NetworkUpdate update = PlanNetworkUpdate(current, change);
  EXPECT_EQ(update.allow_domains, (std::vector<std::string>{"api.anthropic.com", "registry.npmjs.org"}));
  EXPECT_FALSE(update.allow_tcp_ports) << "untouched lists are not sent";
  EXPECT_FALSE(update.allow_cidrs);
  EXPECT_FALSE(update.bandwidth_bytes_per_sec);

  change = {};
  change.allow_ports = {8080};  // already allowed: nothing to do
  change.bandwidth = std::optional<std::uint64_t>(1'000'000);
  EXPECT_TRUE(PlanNetworkUpdate(current, change).empty());

  change = {};
  change.deny_ports = {8080};
  change.allow_cidrs = {"203.0.113.0/24"};
  change.bandwidth = std::optional<std::uint64_t>();
  update = PlanNetworkUpdate(current, change);
  EXPECT_EQ(update.allow_tcp_ports, std::vector<std::uint16_t>{});
  EXPECT_EQ(update.allow_cidrs, std::vector<std::string>{"203.0.113.0/24"});
  ASSERT_TRUE(update.bandwidth_bytes_per_sec.has_value());
  EXPECT_FALSE(update.bandwidth_bytes_per_sec->has_value()) << "--no-bandwidth lifts the limit";

  current.presets = {"npm"};
  change = {};
  change.presets = {"github"};
  change.no_presets = {"npm"};
  update = PlanNetworkUpdate(current, change);
  EXPECT_EQ(update.presets, std::vector<std::string>{"github"}) << "the whole new list is sent";
  EXPECT_FALSE(update.allow_domains) << "the VM's own names are another list";
  change = {};
  change.presets = {"npm"};
  EXPECT_TRUE(PlanNetworkUpdate(current, change).empty());
}

TEST(CliNetTest, ThePolicyPrintsOneLinePerField) {
  NetworkInfo network;
  network.mode = NetworkMode::kNatFiltered;
  network.allow_domains = {"a.test", "*.b.test"};
  network.presets = {"npm"};
  network.preset_domains = {"registry.npmjs.org"};
  EXPECT_EQ(FormatEgressPolicy(network),
            "mode:            nat-filtered\n"
            "allow_domains:   a.test, *.b.test\n"
            "presets:         npm\n"
            "preset_domains:  registry.npmjs.org\n"
            "allow_tcp_ports: -\n"
            "allow_cidrs:     -\n"
            "bandwidth:       unlimited\n");
}

}  // namespace
}  // namespace agentvm::cli
