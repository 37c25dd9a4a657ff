// network.presets in POST /v1/vms bodies and the GET /v1/presets codec:
// preset names are checked for form here (which exist is the daemon's to
// say), only with nat-filtered, and carried both ways.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

TEST(ApiPresetsTest, PresetNamesAreParsedBesideTheVmsOwnNames) {
  auto parsed = ParseCreateVmBody(R"({"network":{"presets":["claude-code","npm"],"allow_domains":["a.test"]}})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->network.presets, (std::vector<std::string>{"claude-code", "npm"}));
  EXPECT_EQ(parsed->network.allow_domains, std::vector<std::string>{"a.test"}) << "expanded by the daemon, not here";
}

TEST(ApiPresetsTest, BadPresetListsAreRefusedNamingTheEntry) {
  struct Case {
    std::string body;
    std::string message;
  };
  std::string too_many = R"({"network":{"presets":[)";
  for (int i = 0; i < 17; ++i) too_many += (i ? ",\"p" : "\"p") + std::to_string(i) + "\"";
  too_many += "]}}";
  const Case cases[] = {
      {R"({"network":{"presets":"npm"}})", "network.presets must be an array of preset names"},
      {R"({"network":{"presets":[1]}})", "network.presets[0] must be a string; got 1"},
      {R"({"network":{"presets":["npm","Bad Name"]}})", "network.presets[1]: \"Bad Name\" is not a preset name"},
      {R"({"network":{"presets":["npm","npm"]}})", "network.presets: \"npm\" is listed twice"},
      {R"({"network":{"mode":"isolated","presets":["npm"]}})", "network.presets is refused when network.mode is isolated"},
      {too_many, "network.presets lists 17 entries; at most 16 are allowed"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseCreateVmBody(c.body);
    ASSERT_FALSE(parsed.has_value()) << c.body.substr(0, 80);
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos) << parsed.error().message;
  }
}

TEST(ApiPresetsTest, APatchGivesTheWholeNewPresetListCheckedAsAtCreate) {
  auto parsed = ParseNetworkPatchBody(R"({"presets":["npm","github"]})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->presets, (std::vector<std::string>{"npm", "github"}));
  EXPECT_FALSE(parsed->allow_domains) << "the VM's own names are not touched";
  EXPECT_FALSE(parsed->preset_domains) << "expanded by the daemon, not here";
  auto none = ParseNetworkPatchBody(R"({"presets":[]})");
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->presets, std::vector<std::string>{});
  auto twice = ParseNetworkPatchBody(R"({"presets":["npm","npm"]})");
  ASSERT_FALSE(twice.has_value());
  EXPECT_NE(twice.error().message.find("\"npm\" is listed twice"), std::string::npos) << twice.error().message;
}

TEST(ApiPresetsTest, TheCodecCarriesPresetsBothWays) {
  CreateVmRequest request;
  request.network.presets = {"github"};
  const auto body = nlohmann::json::parse(CreateVmRequestToJson(request));
  EXPECT_EQ(body["network"]["presets"], nlohmann::json::array({"github"}));

  VmInfo info;
  info.id = "vm-1";
  info.network.mode = NetworkMode::kNatFiltered;
  info.network.presets = {"github"};
  info.network.preset_domains = {"github.com"};
  info.network.allow_domains = {"a.test"};
  auto back = VmInfoFromJson(nlohmann::json::parse(VmInfoToJson(info).dump()));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->network.presets, std::vector<std::string>{"github"});
  EXPECT_EQ(back->network.preset_domains, std::vector<std::string>{"github.com"});
  EXPECT_EQ(back->network.allow_domains, std::vector<std::string>{"a.test"});

  std::vector<net::EgressPreset> presets{{"npm", "builtin", {"registry.npmjs.org"}},
                                         {"corp", "config", {"git.corp.example", "*.cdn.corp.example"}}};
  auto listed = PresetListFromJson(nlohmann::json::parse(PresetListToJson(presets).dump()));
  ASSERT_TRUE(listed.has_value()) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[1].name, "corp");
  EXPECT_EQ((*listed)[1].source, "config");
  EXPECT_EQ((*listed)[1].domains, presets[1].domains);
  EXPECT_FALSE(PresetListFromJson(nlohmann::json::parse(R"({"pools":[]})")).has_value());
}

}  // namespace
}  // namespace agentvm::api
