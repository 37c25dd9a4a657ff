// The interactive exec over a real WebSocket on the API's unix socket, with
// the FakeVmService behind it: the Kubernetes channels in both directions,
// resizes, the end of stdin, the final status, refusals before the upgrade,
// and a client that goes away.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "supervisor/api/encoding.h"
#include "supervisor/api/exec_channels.h"
#include "supervisor/api/testing/in_process_server_test.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;
using nlohmann::json;

// A blocking WebSocket client speaking the channel convention.
class ExecClient {
 public:
  explicit ExecClient(const std::string& socket_path) : ws_(io_) {
    ws_.next_layer().connect(asio::local::stream_protocol::endpoint(socket_path));
  }

  // Upgrades GET /v1/vms/{id}/exec?request=...; false (and the HTTP answer
  // in refusal) if the server said no.
  bool Open(const std::string& id, const json& request, std::string_view subprotocol = kChannelProtocolV5) {
    ws_.set_option(websocket::stream_base::decorator([subprotocol](websocket::request_type& req) {
      req.set(http::field::sec_websocket_protocol, std::string(subprotocol) + ", " + std::string(kChannelProtocolV4));
    }));
    beast::error_code ec;
    ws_.handshake(response_, "agentvm", "/v1/vms/" + id + "/exec?request=" + PercentEncode(request.dump()), ec);
    ws_.binary(true);
    return !ec;
  }

  void Send(ExecChannel channel, std::string_view payload) {
    ws_.write(asio::buffer(EncodeChannelMessage(channel, payload)));
  }

  // Messages until the status (channel 3), which it returns parsed.
  json ReadToStatus() {
    while (true) {
      beast::flat_buffer buffer;
      ws_.read(buffer);
      std::string message = beast::buffers_to_string(buffer.data());
      auto decoded = DecodeChannelMessage(message);
      EXPECT_TRUE(decoded.has_value());
      if (!decoded) return json();
      if (decoded->channel == ExecChannel::kStdout) out += decoded->payload;
      if (decoded->channel == ExecChannel::kStderr) err += decoded->payload;
      if (decoded->channel == ExecChannel::kStatus) return json::parse(decoded->payload);
    }
  }

  // After the status: the server closes the WebSocket.
  bool ClosedNormally() {
    beast::flat_buffer buffer;
    beast::error_code ec;
    ws_.read(buffer, ec);
    return ec == websocket::error::closed && ws_.reason().code == websocket::close_code::normal;
  }

  std::string subprotocol() const { return std::string(response_[http::field::sec_websocket_protocol]); }
  void Drop() { ws_.next_layer().close(); }

  std::string out;
  std::string err;

 private:
  asio::io_context io_;
  websocket::stream<asio::local::stream_protocol::socket> ws_;
  websocket::response_type response_;
};

class ApiExecWebSocketTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    StartServer();
    AddRunningVm("vm-1");
  }
};

TEST_F(ApiExecWebSocketTest, OutputStdinAndTheStatusTravelOnTheirChannels) {
  ExecClient client(options_.socket_path);
  ASSERT_TRUE(client.Open("vm-1", {{"argv", {"out:hello\n", "err:oops\n", "cat", "exit:3"}}}));
  EXPECT_EQ(client.subprotocol(), kChannelProtocolV5);
  client.Send(ExecChannel::kStdin, "typed ");
  client.Send(ExecChannel::kStdin, "input\n");
  client.Send(ExecChannel::kClose, std::string_view("\0", 1));
  json status = client.ReadToStatus();
  EXPECT_EQ(client.out, "hello\ntyped input\n");
  EXPECT_EQ(client.err, "oops\n");
  EXPECT_EQ(status["status"], "Failure");
  EXPECT_EQ(status["reason"], "NonZeroExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
  EXPECT_EQ(status["exit_code"], 3);
  EXPECT_TRUE(client.ClosedNormally());
  OnIo([&] { EXPECT_TRUE(fake_.stdin_closed); });
}

TEST_F(ApiExecWebSocketTest, SuccessIsAKubernetesSuccessStatus) {
  ExecClient client(options_.socket_path);
  ASSERT_TRUE(client.Open("vm-1", {{"argv", {"out:ok"}}}, kChannelProtocolV4));
  EXPECT_EQ(client.subprotocol(), kChannelProtocolV4);
  json status = client.ReadToStatus();
  EXPECT_EQ(status["status"], "Success");
  EXPECT_EQ(status["exit_code"], 0);
  EXPECT_EQ(client.out, "ok");
}

TEST_F(ApiExecWebSocketTest, ResizesReachTheCommand) {
  ExecClient client(options_.socket_path);
  ASSERT_TRUE(client.Open("vm-1", {{"argv", {"cat"}}, {"tty", true}, {"rows", 30}, {"cols", 100}}));
  client.Send(ExecChannel::kResize, ResizeJson({50, 132}));
  client.Send(ExecChannel::kResize, "not json");  // ignored, the session goes on
  client.Send(ExecChannel::kClose, std::string_view("\0", 1));
  client.ReadToStatus();
  OnIo([&] {
    ASSERT_EQ(fake_.exec_resizes.size(), 1u);
    EXPECT_EQ(fake_.exec_resizes[0], (protocol::TerminalSize{50, 132}));
    ASSERT_TRUE(fake_.last_exec.has_value());
    EXPECT_TRUE(fake_.last_exec->tty);
    EXPECT_EQ(fake_.last_exec->size, (protocol::TerminalSize{30, 100}));
  });
}

// What the server answers a GET of `target`, with or without the upgrade headers.
http::response<http::string_body> PlainGet(const std::string& socket_path, const std::string& target, bool upgrade) {
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  socket.connect(asio::local::stream_protocol::endpoint(socket_path));
  http::request<http::empty_body> get{http::verb::get, target, 11};
  get.set(http::field::host, "agentvm");
  if (upgrade) {
    get.set(http::field::connection, "Upgrade");
    get.set(http::field::upgrade, "websocket");
    get.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    get.set(http::field::sec_websocket_version, "13");
  }
  http::write(socket, get);
  beast::flat_buffer buffer;
  http::response<http::string_body> answer;
  http::read(socket, buffer, answer);
  return answer;
}

TEST_F(ApiExecWebSocketTest, BadRequestsAndUnknownVmsAreRefusedBeforeTheUpgrade) {
  auto target = [](const std::string& id, const json& request) {
    return "/v1/vms/" + id + "/exec?request=" + PercentEncode(request.dump());
  };
  auto bad = PlainGet(options_.socket_path, target("vm-1", {{"argv", json::array()}}), true);
  EXPECT_EQ(bad.result_int(), 400);
  EXPECT_NE(bad.body().find("argv"), std::string::npos) << bad.body();
  auto unknown = PlainGet(options_.socket_path, target("vm-nope", {{"argv", {"true"}}}), true);
  EXPECT_EQ(unknown.result_int(), 404);
  auto no_request = PlainGet(options_.socket_path, "/v1/vms/vm-1/exec", true);
  EXPECT_EQ(no_request.result_int(), 400);
  // A GET without the upgrade is told what the route is.
  auto plain = PlainGet(options_.socket_path, target("vm-1", {{"argv", {"true"}}}), false);
  EXPECT_EQ(plain.result_int(), 400);
  EXPECT_NE(plain.body().find("needs a WebSocket upgrade"), std::string::npos) << plain.body();
  OnIo([&] { EXPECT_EQ(fake_.execs_finished(), 0) << "a refused exec ran"; });
}

TEST_F(ApiExecWebSocketTest, AClientThatGoesAwayKillsItsCommandUnlessDetached) {
  {
    ExecClient client(options_.socket_path);
    ASSERT_TRUE(client.Open("vm-1", {{"argv", {"until-signal"}}}));
    client.Drop();
  }
  auto deadline = std::chrono::steady_clock::now() + 5s;
  int finished = 0;
  while (finished == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    OnIo([&] { finished = fake_.execs_finished(); });
  }
  EXPECT_EQ(finished, 1) << "the command outlived its client";
  OnIo([&] { EXPECT_EQ(fake_.exec_signals, std::vector<int>{9}); });

  {
    ExecClient client(options_.socket_path);
    ASSERT_TRUE(client.Open("vm-1", {{"argv", {"sleep:200", "out:late"}}, {"detach", true}}));
    client.Drop();
  }
  deadline = std::chrono::steady_clock::now() + 5s;
  while (finished < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    OnIo([&] { finished = fake_.execs_finished(); });
  }
  EXPECT_EQ(finished, 2);
  OnIo([&] { EXPECT_EQ(fake_.exec_signals.size(), 1u) << "a detached command was signalled"; });
}

}  // namespace
}  // namespace agentvm::api
