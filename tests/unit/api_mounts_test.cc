// "mounts" on the wire: POST /v1/vms parses them (shape only; the daemon's
// policy decides what may be mounted), a VM's JSON lists them, and the CLI's
// request carries them.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

TEST(ApiMountsTest, CreateBodyWithMountsParses) {
  auto request = ParseCreateVmBody(
      R"({"mounts": [{"source": "/home/u/repo", "target": "/workspace"},
                     {"source": "/srv/data", "target": "/data", "readonly": true}]})");
  ASSERT_TRUE(request) << request.error().message;
  ASSERT_EQ(request->mounts.size(), 2u);
  EXPECT_EQ(request->mounts[0].source, "/home/u/repo");
  EXPECT_EQ(request->mounts[0].target, "/workspace");
  EXPECT_FALSE(request->mounts[0].readonly);
  EXPECT_TRUE(request->mounts[1].readonly);
}

TEST(ApiMountsTest, BadMountsAreRefusedSayingWhich) {
  for (const char* body : {
           R"({"mounts": {}})",
           R"({"mounts": [1]})",
           R"({"mounts": [{"target": "/w"}]})",
           R"({"mounts": [{"source": "/s", "target": "/w", "readonly": "yes"}]})",
           R"({"mounts": [{"source": "/s", "target": "/w", "mode": "rw"}]})",
           R"({"mounts": [{"source": "relative", "target": "/w"}]})",
           R"({"mounts": [{"source": "/s", "target": "/w/../etc"}]})",
           R"({"mounts": [{"source": "/s", "target": "/"}]})",
           R"({"mounts": [{"source": "/a", "target": "/w"}, {"source": "/b", "target": "/w"}]})",
       }) {
    auto request = ParseCreateVmBody(body);
    ASSERT_FALSE(request) << body;
    EXPECT_EQ(request.error().code, ErrorCode::kInvalidArgument) << body;
    EXPECT_NE(request.error().message.find("mounts"), std::string::npos) << request.error().message;
  }
}

TEST(ApiMountsTest, AVmsMountsRoundTripAndOthersSendNone) {
  VmInfo info;
  info.id = "vm-1";
  info.mounts = {{.source = "/home/u/repo", .target = "/workspace", .readonly = true}};
  auto back = VmInfoFromJson(nlohmann::json::parse(DumpJson(VmInfoToJson(info))));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->mounts.size(), 1u);
  EXPECT_EQ(back->mounts[0].source, "/home/u/repo");
  EXPECT_TRUE(back->mounts[0].readonly);
  VmInfo plain;
  plain.id = "vm-2";
  EXPECT_FALSE(VmInfoToJson(plain).contains("mounts"));
}

TEST(ApiMountsTest, TheClientsCreateRequestCarriesMounts) {
  CreateVmRequest request;
  request.mounts = {{.source = "/r", .target = "/w", .readonly = false}};
  auto parsed = ParseCreateVmBody(CreateVmRequestToJson(request));
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->mounts.size(), 1u);
  EXPECT_EQ(parsed->mounts[0].target, "/w");
  EXPECT_EQ(CreateVmRequestToJson(CreateVmRequest{}).find("mounts"), std::string::npos);
}

}  // namespace
}  // namespace agentvm::api
