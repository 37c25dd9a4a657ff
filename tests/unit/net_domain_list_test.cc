// Domain allowlist entries: what is accepted, in which form, and what each
// entry admits.
#include "netsetup/domain_list.h"

#include <gtest/gtest.h>

namespace agentvm::net {
namespace {

std::string Canonical(const std::string& text) {
  auto pattern = CanonicalDomainPattern(text, "network.allow_domains[0]");
  return pattern ? *pattern : "error: " + pattern.error().message;
}

TEST(DomainListTest, EntriesAreLowerCasedWithoutTheFinalDot) {
  EXPECT_EQ(Canonical("API.Anthropic.com."), "api.anthropic.com");
  EXPECT_EQ(Canonical("*.GitHubUserContent.com"), "*.githubusercontent.com");
  EXPECT_EQ(Canonical("_acme-challenge.a-b.test"), "_acme-challenge.a-b.test");
}

TEST(DomainListTest, BadEntriesAreRefusedNamingTheField) {
  for (const char* bad : {"", ".", "a..b", "-a.test", "a-.test", "a b.test", "*", "*.", "*.com", "a.*.test",
                          "**.a.test", "a.test/x", "ä.test"}) {
    auto pattern = CanonicalDomainPattern(bad, "network.allow_domains[3]");
    ASSERT_FALSE(pattern.has_value()) << bad;
    EXPECT_EQ(pattern.error().code, ErrorCode::kInvalidArgument);
    EXPECT_TRUE(pattern.error().message.starts_with("network.allow_domains[3]: ")) << pattern.error().message;
  }
  EXPECT_FALSE(CanonicalDomainPattern(std::string(64, 'a') + ".test", "x").has_value()) << "label over 63";
  std::string long_name;
  while (long_name.size() < 250) long_name += "abcdefghi.";
  EXPECT_FALSE(CanonicalDomainPattern(long_name + "test", "x").has_value()) << "name over 253";
}

TEST(DomainListTest, AtMost256EntriesAndNoneTwice) {
  std::vector<std::string> many;
  for (int i = 0; i < 257; ++i) many.push_back("n" + std::to_string(i) + ".test");
  auto too_many = CanonicalDomainPatterns(many, "network.allow_domains");
  ASSERT_FALSE(too_many.has_value());
  EXPECT_NE(too_many.error().message.find("at most 256"), std::string::npos) << too_many.error().message;
  many.pop_back();
  EXPECT_TRUE(CanonicalDomainPatterns(many, "network.allow_domains").has_value());
  auto twice = CanonicalDomainPatterns({"a.test", "A.test."}, "network.allow_domains");
  ASSERT_FALSE(twice.has_value());
  EXPECT_NE(twice.error().message.find("twice"), std::string::npos);
}

TEST(DomainListTest, ExactNamesAndWildcardsAdmitWhatTheySay) {
  DomainList list({"allowed.test", "*.zone.test"});
  EXPECT_TRUE(list.Admits("allowed.test"));
  EXPECT_TRUE(list.Admits("ALLOWED.test."));
  EXPECT_FALSE(list.Admits("other.test"));
  EXPECT_FALSE(list.Admits("a.allowed.test")) << "an exact name admits no subdomain";
  EXPECT_TRUE(list.Admits("a.zone.test"));
  EXPECT_TRUE(list.Admits("b.a.zone.test"));
  EXPECT_FALSE(list.Admits("zone.test")) << "a wildcard admits only names below it";
  EXPECT_FALSE(list.Admits("zone.test.evil.test"));
  EXPECT_FALSE(list.Admits("evilzone.test"));
  EXPECT_EQ(list.size(), 2u);
}

}  // namespace
}  // namespace agentvm::net
