// GET /metrics on TCP (metrics_listen): that one path and nothing of the API,
// one request per connection, bounded headers, connections and time.
#include "supervisor/api/metrics_server.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "supervisor/api/testing/in_process_server_test.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

class MetricsServerTest : public testing::InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    StartServer();  // runs the io thread (and the unix-socket API, unused here)
  }
  void TearDown() override {
    OnIo([&] { metrics_.reset(); });
    InProcessServerTest::TearDown();
  }

  void StartMetrics(MetricsServerOptions options) {
    OnIo([&] {
      metrics_.emplace(io_, fake_, options);
      auto started = metrics_->Start();
      ASSERT_TRUE(started) << started.error().message;
      port_ = metrics_->port();
    });
  }

  // A connection to the server (blocking, on its own io_context).
  std::unique_ptr<tcp::socket> Connect() {
    auto socket = std::make_unique<tcp::socket>(client_io_);
    socket->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    return socket;
  }

  // Sends `request` as it is and reads until the server closes.
  std::string Exchange(const std::string& request) {
    auto socket = Connect();
    asio::write(*socket, asio::buffer(request));
    return ReadAll(*socket);
  }

  static std::string ReadAll(tcp::socket& socket) {
    std::string answer;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(answer), ec);
    return answer;
  }

  std::optional<MetricsServer> metrics_;
  std::uint16_t port_ = 0;
  asio::io_context client_io_;
};

TEST_F(MetricsServerTest, ServesMetricsAndNothingElse) {
  StartMetrics({.host = "127.0.0.1", .port = 0});
  ASSERT_NE(port_, 0);
  std::string ok = Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << ok;
  EXPECT_NE(ok.find("Connection: close\r\n"), std::string::npos) << ok;
  EXPECT_EQ(ok.substr(ok.find("\r\n\r\n") + 4), fake_.metrics_text);

  EXPECT_EQ(Exchange("GET /v1/vms HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Exchange("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  std::string post = Exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET\r\n"), std::string::npos) << post;
  EXPECT_EQ(Exchange("HELLO\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  const std::string huge = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(16 << 10, 'a') + "\r\n\r\n";
  EXPECT_EQ(Exchange(huge).rfind("HTTP/1.1 400", 0), 0u);
}

TEST_F(MetricsServerTest, ConnectionsAreCappedAndIdleOnesTimeOut) {
  StartMetrics({.host = "127.0.0.1", .port = 0, .max_connections = 2, .timeout = std::chrono::milliseconds(500)});
  auto first = Connect();
  auto second = Connect();
  // Both are registered once accepted; then a third is closed unanswered.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto third = Connect();
  asio::write(*third, asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")));
  EXPECT_EQ(ReadAll(*third), "");
  // The idle ones are closed at their deadline, unanswered; then there is room.
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadAll(*first), "");
  EXPECT_EQ(ReadAll(*second), "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  EXPECT_EQ(Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(MetricsServerTest, AnAddressInUseIsAClearError) {
  StartMetrics({.host = "127.0.0.1", .port = 0});
  OnIo([&] {
    MetricsServer other(io_, fake_, {.host = "127.0.0.1", .port = port_});
    auto started = other.Start();
    ASSERT_FALSE(started);
    EXPECT_NE(started.error().message.find("metrics_listen: cannot listen on 127.0.0.1:"), std::string::npos)
        << started.error().message;
  });
}

}  // namespace
}  // namespace agentvm::api
