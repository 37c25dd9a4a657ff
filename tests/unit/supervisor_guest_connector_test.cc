#include <gtest/gtest.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "supervisor/guest_connector.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

template <class T>
T RunToEnd(asio::io_context& io, asio::awaitable<T> task) {
  // Through a void coroutine: co_spawn's handler would need a default-constructible T.
  std::optional<T> result;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { result.emplace(co_await std::move(task)); },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  return std::move(*result);
}

TEST(VsockEndpointTest, EncodesASockaddrVm) {
  auto endpoint = VsockEndpoint(42, 1024);
  EXPECT_EQ(endpoint.size(), sizeof(sockaddr_vm));
  EXPECT_EQ(endpoint.protocol().family(), AF_VSOCK);
  EXPECT_EQ(endpoint.protocol().type(), SOCK_STREAM);
  sockaddr_vm addr;
  std::memcpy(&addr, endpoint.data(), sizeof addr);
  EXPECT_EQ(addr.svm_family, AF_VSOCK);
  EXPECT_EQ(addr.svm_cid, 42u);
  EXPECT_EQ(addr.svm_port, 1024u);
  EXPECT_EQ(addr.svm_reserved1, 0);

  auto parsed = ParseVsockEndpoint(endpoint);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, (VsockAddress{42, 1024}));
  EXPECT_EQ(ParseVsockEndpoint(VsockEndpoint(VMADDR_CID_HOST, 0xffffffffu)),
            (VsockAddress{VMADDR_CID_HOST, 0xffffffffu}));

  asio::generic::stream_protocol::endpoint unix_endpoint{
      asio::local::stream_protocol::endpoint("/tmp/x")};
  EXPECT_FALSE(ParseVsockEndpoint(unix_endpoint).has_value());
}

class ConnectUnixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/agentvm-connect-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/guest.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  asio::io_context io_;
  std::string dir_;
  std::string path_;
};

TEST_F(ConnectUnixTest, WaitsForTheSocketToAppear) {
  // QEMU creates the socket a little after it starts.
  asio::local::stream_protocol::acceptor acceptor(io_);
  asio::steady_timer later(io_, 300ms);
  later.async_wait([&](const boost::system::error_code&) {
    acceptor.open();
    acceptor.bind(asio::local::stream_protocol::endpoint(path_));
    acceptor.listen();
  });
  auto start = std::chrono::steady_clock::now();
  auto socket = RunToEnd(io_, ConnectGuestUnix(path_, 5s));
  ASSERT_TRUE(socket.has_value()) << socket.error().ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_TRUE(socket->is_open());
  // The bytes really go to the listener.
  asio::local::stream_protocol::socket peer = acceptor.accept();
  asio::write(*socket, asio::buffer("hi", 2));
  char buf[2];
  asio::read(peer, asio::buffer(buf));
  EXPECT_EQ(std::string(buf, 2), "hi");
}

TEST_F(ConnectUnixTest, TimesOutWhenNobodyListens) {
  auto start = std::chrono::steady_clock::now();
  auto socket = RunToEnd(io_, ConnectGuestUnix(path_, 250ms));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(socket.has_value());
  EXPECT_EQ(socket.error().code, ErrorCode::kTimeout);
  EXPECT_NE(socket.error().message.find(path_), std::string::npos) << socket.error().message;
  EXPECT_NE(socket.error().message.find("No such file"), std::string::npos)
      << socket.error().message;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
}

TEST_F(ConnectUnixTest, RefusesAPathThatCannotBeASocketAddress) {
  auto socket = RunToEnd(io_, ConnectGuestUnix("/tmp/" + std::string(200, 'x'), 1s));
  ASSERT_FALSE(socket.has_value());
  EXPECT_EQ(socket.error().code, ErrorCode::kInvalidArgument);
}

TEST(ConnectVsockTest, GivesUpInTimeWhenNoGuestAnswers) {
  asio::io_context io;
  auto start = std::chrono::steady_clock::now();
  // CID 0x7fffffff: nobody has it; depending on the host that is an error
  // per attempt or a connect that never completes.
  auto socket = RunToEnd(io, ConnectGuestVsock(0x7fffffff, 1024, 300ms));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(socket.has_value());
  int probe = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  if (probe < 0) {
    EXPECT_EQ(socket.error().code, ErrorCode::kUnavailable) << socket.error().ToString();
  } else {
    ::close(probe);
    EXPECT_EQ(socket.error().code, ErrorCode::kTimeout) << socket.error().ToString();
    EXPECT_GE(took, 300ms);
  }
  EXPECT_LT(took, 3s);
}

}  // namespace
}  // namespace agentvm
