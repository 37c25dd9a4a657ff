// network.allow_domains in POST /v1/vms bodies: canonical on the way in,
// clear 400s naming the entry, only with nat-filtered; and the codec carries
// it both ways.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

TEST(ApiAllowDomainsTest, NamesAndWildcardsAreParsedCanonical) {
  auto parsed = ParseCreateVmBody(R"({"network":{"allow_domains":["API.Anthropic.com.","*.githubusercontent.com"]}})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->network.allow_domains,
            (std::vector<std::string>{"api.anthropic.com", "*.githubusercontent.com"}));
}

TEST(ApiAllowDomainsTest, BadListsAreRefusedNamingTheEntry) {
  struct Case {
    std::string body;
    std::string message;
  };
  std::string too_many = R"({"network":{"allow_domains":[)";
  for (int i = 0; i < 257; ++i) too_many += (i ? ",\"n" : "\"n") + std::to_string(i) + ".test\"";
  too_many += "]}}";
  const Case cases[] = {
      {R"({"network":{"allow_domains":"a.test"}})", "network.allow_domains must be an array of strings"},
      {R"({"network":{"allow_domains":[7]}})", "network.allow_domains[0] must be a string; got 7"},
      {R"({"network":{"allow_domains":["a.test","a b.test"]}})", "network.allow_domains[1]: \"a b.test\" is not a domain name"},
      {R"({"network":{"allow_domains":["*.com"]}})", "would admit a whole top-level domain"},
      {R"({"network":{"allow_domains":["a.test","A.TEST"]}})", "network.allow_domains: \"a.test\" is listed twice"},
      {R"({"network":{"mode":"isolated","allow_domains":["a.test"]}})", "network.allow_domains is refused when network.mode is isolated"},
      {too_many, "network.allow_domains lists 257 entries; at most 256 are allowed"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseCreateVmBody(c.body);
    ASSERT_FALSE(parsed.has_value()) << c.body.substr(0, 80);
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos) << parsed.error().message;
  }
}

TEST(ApiAllowDomainsTest, TheCodecCarriesTheListBothWays) {
  CreateVmRequest request;
  request.network.allow_domains = {"allowed.test"};
  const auto body = nlohmann::json::parse(CreateVmRequestToJson(request));
  EXPECT_EQ(body["network"]["allow_domains"], nlohmann::json::array({"allowed.test"}));

  VmInfo info;
  info.id = "vm-1";
  info.network.mode = NetworkMode::kNatFiltered;
  info.network.allow_domains = {"*.zone.test"};
  auto back = VmInfoFromJson(nlohmann::json::parse(VmInfoToJson(info).dump()));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->network.allow_domains, std::vector<std::string>{"*.zone.test"});
}

}  // namespace
}  // namespace agentvm::api
