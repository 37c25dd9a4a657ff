// GET /v1/vms/{id}/egress: ?after=SEQ is the only parameter, a sequence
// number; anything else is a 400 that never reaches the service.
#include <gtest/gtest.h>

#include "supervisor/api/request_validation.h"
#include "supervisor/api/router.h"

namespace agentvm::api {
namespace {

TEST(ApiEgressTest, AfterIsASequenceNumber) {
  EXPECT_EQ(ParseEgressQuery({}).value(), 0u);
  EXPECT_EQ(ParseEgressQuery({{"after", "42"}}).value(), 42u);
  for (const char* bad : {"", "-1", "4x", "99999999999999999999999"}) {
    auto parsed = ParseEgressQuery({{"after", bad}});
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().message, "after must be an egress log sequence number");
  }
  auto follow = ParseEgressQuery({{"follow", "1"}});
  ASSERT_FALSE(follow.has_value());
  EXPECT_NE(follow.error().message.find("follow"), std::string::npos) << follow.error().message;
}

}  // namespace
}  // namespace agentvm::api
