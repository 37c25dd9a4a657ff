// Passing a file descriptor with a command (QMP getfd / add-fd) via SCM_RIGHTS.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "qmp/fd_passing.h"
#include "qmp/qmp_client.h"
#include "qmp/testing/coroutine_test.h"
#include "qmp/testing/fake_qmp_peer.h"
#include "qmp/testing/qmp_peer_test.h"

namespace agentvm::qmp {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;
using nlohmann::json;

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  UniqueFd read_end;
  UniqueFd write_end;
};

class QmpFdPassingTest : public testing::QmpPeerTest {
};

TEST_F(QmpFdPassingTest, TheFdArrivesWithItsCommand) {
  Pipe first, second;
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    CO_ASSERT_TRUE(peer().received_fds().empty());
    for (int i = 0; i < 2; ++i) {
      auto getfd = co_await peer().ReadMessage();
      CO_ASSERT_TRUE(getfd);
      EXPECT_EQ(getfd->value("execute", ""), "getfd");
      CO_ASSERT_TRUE(peer().received_fds().size() == static_cast<std::size_t>(i + 1));
      // Prove it is the caller's pipe: write through it.
      std::string name = (*getfd)["arguments"]["fdname"];
      UniqueFd fd = std::move(peer().received_fds()[i]);
      EXPECT_EQ(::write(fd.get(), name.data(), name.size()), static_cast<ssize_t>(name.size()));
      co_await peer().Reply(*getfd);
    }
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    json one = {{"fdname", "one"}}, two = {{"fdname", "two"}};
    auto sent_one = client().ExecuteWithFd("getfd", one, first.write_end.get(), 2s);
    // The client keeps its own duplicate: closing ours right away is fine.
    first.write_end.reset();
    CO_ASSERT_TRUE(co_await std::move(sent_one));
    CO_ASSERT_TRUE(co_await client().ExecuteWithFd("getfd", two, second.write_end.get(), 2s));
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();

  std::array<char, 16> buffer{};
  ASSERT_EQ(::read(first.read_end.get(), buffer.data(), buffer.size()), 3);
  EXPECT_EQ(std::string(buffer.data(), 3), "one");
  ASSERT_EQ(::read(second.read_end.get(), buffer.data(), buffer.size()), 3);
  EXPECT_EQ(std::string(buffer.data(), 3), "two");
}

TEST_F(QmpFdPassingTest, AnInvalidFdFailsWithoutSendingAnything) {
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await peer().ServeHandshake());
    auto next = co_await peer().ReadMessage();
    CO_ASSERT_TRUE(next);
    EXPECT_EQ(next->value("execute", ""), "query-status");
    co_await peer().Reply(*next);
  });
  runner_.Spawn([&]() -> awaitable<void> {
    CO_ASSERT_TRUE(co_await client().Handshake(2s));
    json arguments = {{"fdname", "x"}};
    auto bad = co_await client().ExecuteWithFd("getfd", arguments, -1, 1s);
    CO_ASSERT_TRUE(!bad);
    EXPECT_EQ(bad.error().kind, QmpError::Kind::kCommandFailed);
    CO_ASSERT_TRUE(co_await client().Execute("query-status"));
  });
  EXPECT_TRUE(runner_.RunFor(5s)) << runner_.Describe();
}

}  // namespace
}  // namespace agentvm::qmp
