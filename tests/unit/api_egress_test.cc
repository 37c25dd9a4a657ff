// GET /v1/vms/{id}/egress: ?after=SEQ and ?follow=true|false are the only
// parameters (anything else is a 400 that never reaches the service); over
// the real server and the fake service, a followed stream replays the kept
// entries, then streams each new one, and ends when the VM's log goes.
#include <gtest/gtest.h>

#include "supervisor/api/request_validation.h"
#include "supervisor/api/router.h"
#include "supervisor/api/testing/in_process_server_test.h"
#include "supervisor/api/testing/ndjson_stream.h"

namespace agentvm::api {
namespace {

using testing::NdjsonStream;

TEST(ApiEgressTest, AfterIsASequenceNumberAndFollowABool) {
  EXPECT_EQ(ParseEgressQuery({}).value().after, 0u);
  EXPECT_FALSE(ParseEgressQuery({}).value().follow);
  EXPECT_EQ(ParseEgressQuery({{"after", "42"}}).value().after, 42u);
  EXPECT_TRUE(ParseEgressQuery({{"follow", "1"}}).value().follow);
  EXPECT_TRUE(ParseEgressQuery({{"follow", "true"}, {"after", "7"}}).value().follow);
  for (const char* bad : {"", "-1", "4x", "99999999999999999999999"}) {
    auto parsed = ParseEgressQuery({{"after", bad}});
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().message, "after must be an egress log sequence number");
  }
  auto maybe = ParseEgressQuery({{"follow", "maybe"}});
  ASSERT_FALSE(maybe.has_value());
  EXPECT_EQ(maybe.error().message, "follow must be true or false");
  EXPECT_FALSE(ParseEgressQuery({{"since", "1"}}).has_value());
}

class ApiEgressStreamTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    StartServer();  // OnIo runs on the server's io_context
    AddRunningVm("vm-1");
    OnIo([&] { fake_.egress_logs["vm-1"] = std::make_unique<net::VmEgressLog>(dir_ + "/egress.jsonl"); });
  }
  void Add(net::EgressEntry entry) {
    OnIo([&] { fake_.egress_logs.at("vm-1")->Add(std::move(entry)); });
  }
};

TEST_F(ApiEgressStreamTest, FollowReplaysTheKeptEntriesThenStreamsEachNewOne) {
  Add({.kind = "dns", .name = "a.test", .dns_type = 1, .verdict = "allowed", .answers = {"198.51.100.10"}});
  NdjsonStream stream(options_.socket_path, "/v1/vms/vm-1/egress?follow=true");
  ASSERT_EQ(stream.status(), 200);
  EXPECT_EQ(stream.content_type(), "application/x-ndjson");
  Add({.kind = "refused", .verdict = "refused", .destination = "198.51.100.11", .port = 443, .protocol = "tcp"});
  auto lines = stream.Lines(2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["seq"], 1);
  EXPECT_EQ(lines[0]["name"], "a.test");
  EXPECT_EQ(lines[1]["seq"], 2);
  EXPECT_EQ(lines[1]["kind"], "refused");
  EXPECT_EQ(lines[1]["destination"], "198.51.100.11");
  Add({.kind = "dns", .name = "b.test", .dns_type = 1, .verdict = "refused"});
  auto third = stream.Lines(1);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0]["name"], "b.test");
}

TEST_F(ApiEgressStreamTest, AfterSkipsWhatTheClientHasSeen) {
  Add({.kind = "dns", .name = "a.test", .verdict = "refused"});
  Add({.kind = "dns", .name = "b.test", .verdict = "refused"});
  NdjsonStream stream(options_.socket_path, "/v1/vms/vm-1/egress?follow=1&after=1");
  Add({.kind = "dns", .name = "c.test", .verdict = "refused"});
  auto lines = stream.Lines(2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["name"], "b.test");
  EXPECT_EQ(lines[1]["name"], "c.test");
}

TEST_F(ApiEgressStreamTest, TheStreamEndsCleanlyWhenTheVmsLogGoes) {
  NdjsonStream stream(options_.socket_path, "/v1/vms/vm-1/egress?follow=true");
  ASSERT_EQ(stream.status(), 200);
  OnIo([&] { fake_.egress_logs.erase("vm-1"); });  // its network went: stopped or removed
  EXPECT_EQ(stream.Rest(), "") << "ended, with nothing after the entries";
}

TEST_F(ApiEgressStreamTest, WithoutFollowOrWithoutALiveLogTheStreamEndsAfterTheReplay) {
  Add({.kind = "dns", .name = "a.test", .verdict = "refused"});
  NdjsonStream plain(options_.socket_path, "/v1/vms/vm-1/egress");
  ASSERT_EQ(plain.status(), 200);
  EXPECT_EQ(plain.Lines(5).size(), 1u);
  EXPECT_EQ(plain.Rest(), "");
  AddRunningVm("vm-2");  // no live log: isolated, or its network is not attached
  NdjsonStream none(options_.socket_path, "/v1/vms/vm-2/egress?follow=true");
  ASSERT_EQ(none.status(), 200);
  EXPECT_EQ(none.Rest(), "");
}

TEST_F(ApiEgressStreamTest, UnknownVmsAndBadQueriesAreRefused) {
  NdjsonStream unknown(options_.socket_path, "/v1/vms/vm-9/egress?follow=true");
  EXPECT_EQ(unknown.status(), 404);
  for (const char* target : {"/v1/vms/vm-1/egress?follow=maybe", "/v1/vms/vm-1/egress?after=x",
                             "/v1/vms/vm-1/egress?since=1"}) {
    NdjsonStream bad(options_.socket_path, target);
    EXPECT_EQ(bad.status(), 400) << target;
  }
}

}  // namespace
}  // namespace agentvm::api
