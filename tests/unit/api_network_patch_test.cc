// PATCH /v1/vms/{id}/network: the body's rules (each field given replaces the
// VM's, null lifts the bandwidth limit, create's checks and messages), and
// the handler against the fake service: what reaches it, what it answers.
#include <algorithm>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/api/handlers.h"
#include "supervisor/api/request_validation.h"
#include "supervisor/api/router.h"
#include "supervisor/api/testing/fake_vm_service.h"
#include "tests/support/coroutine_runner.h"

namespace agentvm::api {
namespace {

using nlohmann::json;

TEST(ApiNetworkPatchTest, EachFieldGivenIsParsedAndTheRestLeftAlone) {
  auto update = ParseNetworkPatchBody(R"({"allow_domains": ["WEB.test."], "allow_tcp_ports": []})");
  ASSERT_TRUE(update.has_value()) << update.error().message;
  EXPECT_EQ(update->allow_domains, std::vector<std::string>{"web.test"}) << "canonical, as at create";
  EXPECT_EQ(update->allow_tcp_ports, std::vector<std::uint16_t>{}) << "[] empties the list";
  EXPECT_FALSE(update->allow_cidrs.has_value());
  EXPECT_FALSE(update->bandwidth_bytes_per_sec.has_value());

  auto unlimited = ParseNetworkPatchBody(R"({"bandwidth_bytes_per_sec": null})");
  ASSERT_TRUE(unlimited.has_value()) << unlimited.error().message;
  ASSERT_TRUE(unlimited->bandwidth_bytes_per_sec.has_value());
  EXPECT_FALSE(unlimited->bandwidth_bytes_per_sec->has_value()) << "null lifts the limit";
  auto limited = ParseNetworkPatchBody(R"({"bandwidth_bytes_per_sec": 1000000, "allow_cidrs": ["203.0.113.0/24"]})");
  ASSERT_TRUE(limited.has_value()) << limited.error().message;
  EXPECT_EQ(limited->bandwidth_bytes_per_sec, std::optional<std::uint64_t>(1000000));
  EXPECT_EQ(limited->allow_cidrs, std::vector<std::string>{"203.0.113.0/24"});
}

TEST(ApiNetworkPatchTest, BadBodiesAreRefusedWithCreatesMessages) {
  struct Case {
    std::string body;
    std::string message;
  };
  const Case cases[] = {
      {"{}", "give at least one of"},
      {"[]", "must be a JSON object"},
      {R"({"mode": "isolated"})", "mode"},
      {R"({"bridge": "br0"})", "bridge"},
      {R"({"allow_tcp_ports": [53]})", "port 53"},
      {R"({"allow_cidrs": ["10.0.0.1/8"]})", "host bits"},
      {R"({"allow_domains": ["*.com"]})", "would admit a whole top-level domain"},
      {R"({"bandwidth_bytes_per_sec": 10})", "bandwidth_bytes_per_sec"},
      {R"({"bandwidth_bytes_per_sec": "fast"})", "bandwidth_bytes_per_sec"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseNetworkPatchBody(c.body);
    ASSERT_FALSE(parsed.has_value()) << c.body;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << c.body;
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos) << c.body << ": " << parsed.error().message;
  }
}

// Keeps the one response a simple route sends.
class RecordingResponder : public Responder {
 public:
  boost::asio::awaitable<bool> Send(HttpResponse response) override {
    sent = std::move(response);
    co_return true;
  }
  boost::asio::awaitable<bool> BeginStream(int, std::string) override { co_return false; }
  boost::asio::awaitable<bool> WriteChunk(std::string) override { co_return false; }
  boost::asio::awaitable<bool> EndStream() override { co_return false; }
  void Abort() override {}
  void WatchForClientGone(std::function<void()>) override {}

  std::optional<HttpResponse> sent;
};

boost::asio::awaitable<bool> HandleOnce(ApiHandlers& handlers, const RouteMatch& match, std::string body,
                                        Responder& responder) {
  co_await handlers.Handle(match, std::move(body), responder);
  co_return true;
}

class ApiNetworkPatchHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VmInfo vm;
    vm.id = "vm-1";
    vm.state = VmState::kRunning;
    vm.network.mode = NetworkMode::kNatFiltered;
    vm.network.allow_tcp_ports = {8080};
    vm.network.allow_domains = {"web.test"};
    fake_.vms[vm.id] = vm;
  }

  HttpResponse Patch(const std::string& target, const std::string& body) {
    auto match = MatchRoute("PATCH", target);
    EXPECT_TRUE(match.has_value());
    if (!match) return HttpResponse{match.error().http_status, {}, {}, {}};
    RecordingResponder responder;
    runner_.Run(HandleOnce(handlers_, *match, body, responder));
    EXPECT_TRUE(responder.sent.has_value());
    return responder.sent.value_or(HttpResponse{});
  }

  testing::FakeVmService fake_;
  ApiHandlers handlers_{fake_};
  boost::asio::io_context io_;
  agentvm::testing::CoroutineRunner runner_{io_};
};

TEST_F(ApiNetworkPatchHandlerTest, AChangeReachesTheServiceAndTheVmComesBack) {
  HttpResponse reply = Patch("/v1/vms/vm-1/network", R"({"allow_domains": ["web.test", "*.zone.test"]})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json network = json::parse(reply.body)["network"];
  EXPECT_EQ(network["allow_domains"], json::array({"web.test", "*.zone.test"}));
  EXPECT_EQ(network["allow_tcp_ports"], json::array({8080})) << "a field not given stays";
  ASSERT_TRUE(fake_.last_network_update.has_value());
  EXPECT_FALSE(fake_.last_network_update->allow_tcp_ports.has_value());
}

TEST_F(ApiNetworkPatchHandlerTest, PresetsReplaceTheVmsListAndOnlyTheirOwnNamesComeAndGo) {
  fake_.vms["vm-1"].network.allow_domains = {"web.test", "registry.npmjs.org"};
  HttpResponse both = Patch("/v1/vms/vm-1/network", R"({"presets": ["npm", "github"]})");
  ASSERT_EQ(both.status, 200) << both.body;
  json network = json::parse(both.body)["network"];
  EXPECT_EQ(network["presets"], json::array({"npm", "github"}));
  EXPECT_EQ(network["allow_domains"], json::array({"web.test", "registry.npmjs.org"})) << "the VM's own stay apart";
  EXPECT_EQ(network["preset_domains"][0], "registry.npmjs.org");
  EXPECT_NE(std::find(network["preset_domains"].begin(), network["preset_domains"].end(), "github.com"),
            network["preset_domains"].end());
  // Taking npm off takes its names off the preset list only: the VM was
  // also given registry.npmjs.org by name, and keeps it.
  HttpResponse github = Patch("/v1/vms/vm-1/network", R"({"presets": ["github"]})");
  ASSERT_EQ(github.status, 200) << github.body;
  network = json::parse(github.body)["network"];
  EXPECT_EQ(network["presets"], json::array({"github"}));
  EXPECT_EQ(std::find(network["preset_domains"].begin(), network["preset_domains"].end(), "registry.npmjs.org"),
            network["preset_domains"].end());
  EXPECT_EQ(network["allow_domains"], json::array({"web.test", "registry.npmjs.org"}));
  const std::vector<std::string> enforced = EnforcedDomains(fake_.vms["vm-1"].network);
  EXPECT_NE(std::find(enforced.begin(), enforced.end(), "registry.npmjs.org"), enforced.end());
  EXPECT_NE(std::find(enforced.begin(), enforced.end(), "github.com"), enforced.end());
}

TEST_F(ApiNetworkPatchHandlerTest, AnUnknownPresetIsA400AndChangesNothing) {
  const NetworkInfo before = fake_.vms["vm-1"].network;
  HttpResponse reply = Patch("/v1/vms/vm-1/network", R"({"presets": ["github", "nope"], "allow_tcp_ports": [9000]})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(reply.body.find(R"(no preset \"nope\" (known: claude-code)"), std::string::npos) << reply.body;
  EXPECT_EQ(fake_.vms["vm-1"].network.presets, before.presets);
  EXPECT_EQ(fake_.vms["vm-1"].network.preset_domains, before.preset_domains);
  EXPECT_EQ(fake_.vms["vm-1"].network.allow_tcp_ports, before.allow_tcp_ports);
  EXPECT_EQ(Patch("/v1/vms/vm-1/network", R"({"presets": ["NPM"]})").status, 400) << "bad syntax: the parser's 400";
}

TEST_F(ApiNetworkPatchHandlerTest, BadRequestsNeverReachTheService) {
  const int calls = fake_.calls();
  EXPECT_EQ(Patch("/v1/vms/vm-1/network", R"({"allow_tcp_ports": [53]})").status, 400);
  EXPECT_EQ(Patch("/v1/vms/vm-1/network?x=1", R"({"allow_tcp_ports": [80]})").status, 400);
  EXPECT_EQ(Patch("/v1/vms/vm-1/network", "not json").status, 400);
  EXPECT_EQ(fake_.calls(), calls);
  EXPECT_FALSE(fake_.last_network_update.has_value());
}

TEST_F(ApiNetworkPatchHandlerTest, TheServicesRefusalsKeepTheirStatus) {
  EXPECT_EQ(Patch("/v1/vms/vm-2/network", R"({"allow_tcp_ports": [80]})").status, 404);
  fake_.vms["vm-1"].state = VmState::kStopped;
  EXPECT_EQ(Patch("/v1/vms/vm-1/network", R"({"allow_tcp_ports": [80]})").status, 409);
  fake_.vms["vm-1"].state = VmState::kRunning;
  fake_.vms["vm-1"].network.mode = NetworkMode::kIsolated;
  EXPECT_EQ(Patch("/v1/vms/vm-1/network", R"({"allow_tcp_ports": [80]})").status, 400);
}

TEST(ApiNetworkPatchRouteTest, OnlyPatchIsAllowedThere) {
  auto get = MatchRoute("GET", "/v1/vms/vm-1/network");
  ASSERT_FALSE(get.has_value());
  EXPECT_EQ(get.error().http_status, 405);
  EXPECT_EQ(get.error().allow, "PATCH");
}

}  // namespace
}  // namespace agentvm::api
