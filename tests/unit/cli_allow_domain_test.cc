// agentvm run/create --allow-domain: repeatable, canonical, checked before
// any request is sent, with the flag's name in the message.
#include "cli/cli_args.h"

#include <gtest/gtest.h>

namespace agentvm::cli {
namespace {

std::expected<CliCommand, UsageError> ParseArgs(std::vector<std::string> args) {
  return ParseCli(args, "", [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
}

TEST(CliAllowDomainTest, RepeatableAndCanonical) {
  auto run = ParseArgs({"run", "--allow-domain", "API.Anthropic.com", "--allow-domain=*.npmjs.org", "--", "true"});
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_EQ(run->vm.network.allow_domains, (std::vector<std::string>{"api.anthropic.com", "*.npmjs.org"}));
}

TEST(CliAllowDomainTest, BadNamesAreUsageErrors) {
  auto bad = ParseArgs({"run", "--allow-domain", "not a name", "--", "true"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("--allow-domain: \"not a name\" is not a domain name"), std::string::npos)
      << bad.error().message;
  auto twice = ParseArgs({"create", "--allow-domain", "a.test", "--allow-domain", "A.test"});
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("is listed twice"), std::string::npos) << twice.error().message;
  auto isolated = ParseArgs({"create", "--net", "isolated", "--allow-domain", "a.test"});
  ASSERT_FALSE(isolated);
  EXPECT_NE(isolated.error().message.find("--allow-domain is refused when --net is isolated"), std::string::npos)
      << isolated.error().message;
}

}  // namespace
}  // namespace agentvm::cli
