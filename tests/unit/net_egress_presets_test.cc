// Egress presets: the built-ins, the operator's from the YAML, and how a
// VM's presets expand into its allowlist.
#include "netsetup/egress_presets.h"

#include <gtest/gtest.h>

#include "netsetup/domain_list.h"

namespace agentvm::net {
namespace {

using Operator = std::map<std::string, std::vector<std::string>>;

std::string Message(const Error& error) { return error.message; }

TEST(EgressPresetsTest, BuiltinsAreTheDocumentedOnesWithValidNames) {
  std::vector<std::string> names;
  for (const EgressPreset& preset : BuiltinEgressPresets()) {
    names.push_back(preset.name);
    EXPECT_EQ(preset.source, "builtin");
    EXPECT_FALSE(preset.domains.empty()) << preset.name;
    // Every built-in list passes the checks a user's list does.
    auto canonical = CanonicalDomainPatterns(preset.domains, preset.name);
    ASSERT_TRUE(canonical.has_value()) << Message(canonical.error());
    EXPECT_EQ(*canonical, preset.domains) << preset.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"claude-code", "codex", "debian", "github", "npm", "pypi"}));
  EgressPresets presets;
  ASSERT_NE(presets.Find("claude-code"), nullptr);
  const auto& claude = presets.Find("claude-code")->domains;
  EXPECT_NE(std::find(claude.begin(), claude.end(), "api.anthropic.com"), claude.end());
  EXPECT_EQ(presets.Find("pypi")->domains, (std::vector<std::string>{"pypi.org", "files.pythonhosted.org"}));
}

TEST(EgressPresetsTest, OperatorPresetsAreCanonicalizedAndListedAfterTheBuiltins) {
  auto presets = EgressPresets::Make(Operator{{"internal", {"Git.Corp.Example.", "*.cdn.corp.example"}}});
  ASSERT_TRUE(presets.has_value()) << Message(presets.error());
  ASSERT_EQ(presets->all().size(), BuiltinEgressPresets().size() + 1);
  const EgressPreset& mine = presets->all().back();
  EXPECT_EQ(mine.name, "internal");
  EXPECT_EQ(mine.source, "config");
  EXPECT_EQ(mine.domains, (std::vector<std::string>{"git.corp.example", "*.cdn.corp.example"}));
}

TEST(EgressPresetsTest, BadOperatorPresetsAreRefusedWithTheirName) {
  auto error_of = [](const Operator& given) {
    auto made = EgressPresets::Make(given);
    return made ? std::string("accepted") : Message(made.error());
  };
  EXPECT_NE(error_of({{"Bad_Name", {"a.test"}}}).find("is not a preset name"), std::string::npos);
  EXPECT_NE(error_of({{"-x", {"a.test"}}}).find("is not a preset name"), std::string::npos);
  EXPECT_NE(error_of({{std::string(33, 'a'), {"a.test"}}}).find("is not a preset name"), std::string::npos);
  EXPECT_NE(error_of({{"github", {"a.test"}}}).find("egress_presets.github has the name of a built-in"),
            std::string::npos);
  EXPECT_NE(error_of({{"empty", {}}}).find("egress_presets.empty lists no names"), std::string::npos);
  EXPECT_NE(error_of({{"typo", {"a..test"}}}).find("egress_presets.typo: \"a..test\""), std::string::npos);
  EXPECT_NE(error_of({{"twice", {"a.test", "A.test"}}}).find("listed twice"), std::string::npos);
  std::vector<std::string> long_list;
  for (int i = 0; i < 257; ++i) long_list.push_back("n" + std::to_string(i) + ".test");
  EXPECT_NE(error_of({{"long", long_list}}).find("at most 256"), std::string::npos);
  Operator many;
  for (std::size_t i = 0; i <= kMaxOperatorPresets; ++i) many["p" + std::to_string(i)] = {"a.test"};
  EXPECT_NE(error_of(many).find("at most 64"), std::string::npos);
}

TEST(EgressPresetsTest, ExpandGivesThePresetsNamesOnceEachApartFromTheVmsOwn) {
  EgressPresets presets;
  auto expanded = presets.Expand({"npm", "claude-code"}, {"example.test", "registry.npmjs.org"}, "network.presets");
  ASSERT_TRUE(expanded.has_value()) << Message(expanded.error());
  ASSERT_GE(expanded->size(), 2u);
  EXPECT_EQ((*expanded)[0], "registry.npmjs.org");  // npm's, also the VM's own: kept on both lists
  EXPECT_EQ(std::count(expanded->begin(), expanded->end(), "registry.npmjs.org"), 1);
  EXPECT_EQ(std::count(expanded->begin(), expanded->end(), "api.anthropic.com"), 1);
  EXPECT_EQ(std::count(expanded->begin(), expanded->end(), "example.test"), 0);
  EXPECT_TRUE(presets.Expand({}, {"a.test"}, "network.presets")->empty());
  EXPECT_EQ(MergeDomainLists({"example.test", "registry.npmjs.org"}, *expanded).size(), expanded->size() + 1);
}

TEST(EgressPresetsTest, ExpandRefusesUnknownRepeatedAndTooMany) {
  EgressPresets presets;
  auto unknown = presets.Expand({"nope"}, {}, "network.presets");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Message(unknown.error()),
            "network.presets: no preset \"nope\" (known: claude-code, codex, debian, github, npm, pypi)");
  auto twice = presets.Expand({"npm", "npm"}, {}, "--preset");
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(Message(twice.error()), "--preset: \"npm\" is listed twice");
  auto bad = presets.Expand({"NPM"}, {}, "network.presets");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(Message(bad.error()).find("is not a preset name"), std::string::npos);
  std::vector<std::string> seventeen(kMaxPresetsPerVm + 1, "npm");
  auto too_many = presets.Expand(seventeen, {}, "network.presets");
  ASSERT_FALSE(too_many.has_value());
  EXPECT_NE(Message(too_many.error()).find("at most 16"), std::string::npos);
}

TEST(EgressPresetsTest, TheCapOf256AppliesAfterExpansion) {
  std::vector<std::string> own;
  for (int i = 0; i < 255; ++i) own.push_back("n" + std::to_string(i) + ".test");
  EgressPresets presets;
  EXPECT_TRUE(presets.Expand({"npm"}, own, "network.presets").has_value()) << "255 + 1 = 256";
  auto over = presets.Expand({"pypi"}, own, "network.presets");
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(Message(over.error()),
            "network.presets and allow_domains come to 257 names; at most 256 are allowed");
}

}  // namespace
}  // namespace agentvm::net
