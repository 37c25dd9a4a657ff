// GET /v1/events over the real server and the fake service: replay from the
// ring, following as events are published, filters, and refused queries.
#include <string>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/testing/in_process_server_test.h"
#include "supervisor/event_log.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

// One GET whose body is read as it streams in.
class EventStream {
 public:
  EventStream(const std::string& socket_path, const std::string& target) : socket_(io_) {
    socket_.connect(asio::local::stream_protocol::endpoint(socket_path));
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "localhost");
    http::write(socket_, request);
    parser_.body_limit(1 << 20);
    http::read_header(socket_, buffer_, parser_);
  }

  int status() const { return parser_.get().result_int(); }
  std::string content_type() const { return std::string(parser_.get()[http::field::content_type]); }

  // The next `n` lines of the body (fewer if it ends first), parsed.
  std::vector<json> Lines(std::size_t n) {
    std::vector<json> lines;
    while (lines.size() < n) {
      std::string& body = parser_.get().body();
      auto newline = body.find('\n');
      if (newline != std::string::npos) {
        lines.push_back(json::parse(body.substr(0, newline)));
        body.erase(0, newline + 1);
        continue;
      }
      if (parser_.is_done()) break;
      beast::error_code ec;
      http::read_some(socket_, buffer_, parser_, ec);
      if (ec) break;
    }
    return lines;
  }

  // The rest of the body once the server ends it.
  std::string Rest() {
    beast::error_code ec;
    while (!parser_.is_done() && !ec) http::read_some(socket_, buffer_, parser_, ec);
    return parser_.get().body();
  }

 private:
  asio::io_context io_;
  asio::local::stream_protocol::socket socket_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

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

  EventStream stream(options_.socket_path, "/v1/events?follow=false");
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
  EventStream stream(options_.socket_path, "/v1/events?vm=vm-b&type=stopped");
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
  EventStream stream(options_.socket_path, "/v1/events?follow=false&type=exec_finished,created");
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
  EventStream stream(options_.socket_path, "/v1/events?since=1");
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
  EventStream stream(options_.socket_path, "/v1/events");
  ASSERT_EQ(stream.status(), 200);
  StopServer();
  EXPECT_EQ(stream.Lines(1).size(), 0u);
}

TEST_F(ApiEventsTest, BadQueriesAreRefused) {
  StartServer();
  for (const char* target : {"/v1/events?since=x", "/v1/events?follow=maybe", "/v1/events?type=Started",
                             "/v1/events?type=started,,stopped", "/v1/events?type=started,",
                             "/v1/events?vm=..%2F", "/v1/events?color=red"}) {
    EventStream stream(options_.socket_path, target);
    EXPECT_EQ(stream.status(), 400) << target;
  }
}

TEST_F(ApiEventsTest, MetricsAreServedAsPrometheusTextOutsideV1) {
  StartServer();
  EventStream metrics(options_.socket_path, "/metrics");
  EXPECT_EQ(metrics.status(), 200);
  EXPECT_EQ(metrics.content_type(), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.Rest(), fake_.metrics_text);
  EXPECT_EQ(EventStream(options_.socket_path, "/metrics?x=1").status(), 400);
}

}  // namespace
}  // namespace agentvm::api
