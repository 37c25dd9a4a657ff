// GET /v1/events over the real server and the fake service: replay from the
// ring, following as events are published, filters, and refused queries.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/testing/in_process_server_test.h"
#include "supervisor/api/testing/ndjson_stream.h"
#include "supervisor/event_log.h"

namespace agentvm::api {
namespace {

using testing::NdjsonStream;

class ApiEventsTest : public testing::InProcessServerTest {
 protected:
  void Publish(const std::string& type, const std::string& vm, nlohmann::ordered_json fields = {}) {
    OnIo([&] { fake_.events.Publish(type, vm, fields.is_null() ? nlohmann::ordered_json::object() : fields); });
  }
};

TEST_F(ApiEventsTest, WithoutFollowTheRingIsReplayedInOrderAndTheStreamEnds) {
  StartServer();
  Publish("created", "vm-a", {{"image", "tiny"}});
  Publish("started", "vm-a", {{"boot", "cold"}, {"ms", 3100}});
  Publish("exec_finished", "vm-a", {{"exit_code", 0}});

  NdjsonStream stream(options_.socket_path, "/v1/events?follow=false");
  EXPECT_EQ(stream.status(), 200);
  EXPECT_EQ(stream.content_type(), "application/x-ndjson");
  auto lines = stream.Lines(10);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["seq"], 1);
  EXPECT_EQ(lines[0]["type"], "created");
  EXPECT_EQ(lines[0]["vm"], "vm-a");
  EXPECT_EQ(lines[0]["image"], "tiny");
  EXPECT_EQ(lines[1]["type"], "started");
  EXPECT_EQ(lines[1]["boot"], "cold");
  EXPECT_EQ(lines[1]["ms"], 3100);
  EXPECT_EQ(lines[2]["seq"], 3);
  // RFC 3339, UTC, milliseconds: 2026-12-04T21:22:29.123Z
  const std::string time = lines[2]["time"];
  EXPECT_EQ(time.size(), 24u) << time;
  EXPECT_EQ(time.back(), 'Z') << time;
  EXPECT_EQ(stream.Rest(), "");
}

TEST_F(ApiEventsTest, FollowingGetsEachNewEventThatPassesTheFilters) {
  StartServer();
  Publish("created", "vm-a");  // before the stream: not replayed without since
  NdjsonStream stream(options_.socket_path, "/v1/events?vm=vm-b&type=stopped");
  ASSERT_EQ(stream.status(), 200);
  Publish("stopped", "vm-a", {{"reason", "stopped by request"}});
  Publish("created", "vm-b");
  Publish("stopped", "vm-b", {{"reason", "stopped by request"}});
  auto lines = stream.Lines(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["type"], "stopped");
  EXPECT_EQ(lines[0]["vm"], "vm-b");
  EXPECT_EQ(lines[0]["seq"], 4);
  EXPECT_EQ(lines[0]["reason"], "stopped by request");
}

TEST_F(ApiEventsTest, SeveralTypesAreCommaSeparated) {
  StartServer();
  Publish("created", "vm-a");
  Publish("exec_started", "vm-a");
  Publish("exec_finished", "vm-a");
  Publish("stopped", "vm-a");
  NdjsonStream stream(options_.socket_path, "/v1/events?follow=false&type=exec_finished,created");
  ASSERT_EQ(stream.status(), 200);
  auto lines = stream.Lines(3);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["type"], "created");
  EXPECT_EQ(lines[1]["type"], "exec_finished");
}

TEST_F(ApiEventsTest, SinceReplaysTheMissedEventsThenFollows) {
  StartServer();
  Publish("created", "vm-a");
  Publish("started", "vm-a");
  Publish("exec_started", "vm-a");
  NdjsonStream stream(options_.socket_path, "/v1/events?since=1");
  Publish("removed", "vm-a");
  auto lines = stream.Lines(3);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["type"], "started");
  EXPECT_EQ(lines[1]["type"], "exec_started");
  EXPECT_EQ(lines[2]["type"], "removed");
  EXPECT_EQ(lines[2]["seq"], 4);
}

TEST_F(ApiEventsTest, AFollowedStreamEndsWhenTheServerStops) {
  StartServer();
  NdjsonStream stream(options_.socket_path, "/v1/events");
  ASSERT_EQ(stream.status(), 200);
  StopServer();
  EXPECT_EQ(stream.Lines(1).size(), 0u);
}

TEST_F(ApiEventsTest, BadQueriesAreRefused) {
  StartServer();
  for (const char* target : {"/v1/events?since=x", "/v1/events?follow=maybe", "/v1/events?type=Started",
                             "/v1/events?type=started,,stopped", "/v1/events?type=started,",
                             "/v1/events?vm=..%2F", "/v1/events?color=red"}) {
    NdjsonStream stream(options_.socket_path, target);
    EXPECT_EQ(stream.status(), 400) << target;
  }
}

TEST_F(ApiEventsTest, MetricsAreServedAsPrometheusTextOutsideV1) {
  StartServer();
  NdjsonStream metrics(options_.socket_path, "/metrics");
  EXPECT_EQ(metrics.status(), 200);
  EXPECT_EQ(metrics.content_type(), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.Rest(), fake_.metrics_text);
  EXPECT_EQ(NdjsonStream(options_.socket_path, "/metrics?x=1").status(), 400);
}

}  // namespace
}  // namespace agentvm::api
