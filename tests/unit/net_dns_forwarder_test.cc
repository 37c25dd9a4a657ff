// DnsForwarder on 127.0.0.1 against a fake upstream: plain sockets the test
// drives by hand, so it decides what upstream answers, when, and from where.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "netsetup/dns_forwarder.h"
#include "tests/unit/dns_forwarder_fixture.h"

namespace agentvm {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

using DnsForwarderTest = DnsForwarderFixture;

TEST_F(DnsForwarderTest, BindsAnEphemeralPortAndRefusesAnAddressTheHostLacks) {
  auto forwarder = StartForwarder(Options());
  EXPECT_NE(forwarder->port(), 0);
  EXPECT_FALSE(forwarder->Start().has_value()) << "a second Start must be refused";

  auto options = Options();
  options.listen = asio::ip::udp::endpoint(asio::ip::make_address_v4("192.0.2.77"), 0);
  DnsForwarder elsewhere(io_.get_executor(), options);
  auto started = elsewhere.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(started.error().message.find("192.0.2.77"), std::string::npos) << started.error().message;
}

TEST_F(DnsForwarderTest, RewritesTheIdUpstreamAndRestoresItForTheGuest) {
  auto forwarder = StartForwarder(Options());
  UdpPeer guest_a, guest_b;
  const Bytes query = MakeQuery(0x1234, "web.test");
  guest_a.SendTo(query, forwarder->port());
  guest_b.SendTo(query, forwarder->port());

  auto first = Await(upstream_);
  auto second = Await(upstream_);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(Body(first->data), Body(query)) << "only the id may change";
  EXPECT_EQ(Body(second->data), Body(query));
  EXPECT_NE(IdOf(first->data), IdOf(second->data)) << "two guests' equal ids must not collide upstream";
  EXPECT_EQ(first->from_port, second->from_port) << "one upstream-facing socket";

  upstream_.SendTo(AnswerTo(first->data), first->from_port);
  upstream_.SendTo(AnswerTo(second->data), second->from_port);
  auto answer_a = Await(guest_a);
  auto answer_b = Await(guest_b);
  ASSERT_TRUE(answer_a && answer_b);
  EXPECT_EQ(answer_a->from_port, forwarder->port()) << "the answer comes from the address the guest asked";
  EXPECT_EQ(IdOf(answer_a->data), 0x1234);
  EXPECT_EQ(IdOf(answer_b->data), 0x1234);
  EXPECT_EQ(Body(answer_a->data), Body(AnswerTo(query)));
  EXPECT_EQ(forwarder->stats().forwarded, 2u);
  EXPECT_EQ(forwarder->stats().answered, 2u);
  EXPECT_EQ(forwarder->outstanding(), 0u);
}

TEST_F(DnsForwarderTest, ConcurrentGuestsEachGetTheirOwnAnswer) {
  auto forwarder = StartForwarder(Options());
  UdpPeer guest_a, guest_b;
  guest_a.SendTo(MakeQuery(7, "a.test"), forwarder->port());
  guest_b.SendTo(MakeQuery(7, "b.test"), forwarder->port());
  auto first = Await(upstream_);
  auto second = Await(upstream_);
  ASSERT_TRUE(first && second);
  // Answered in the reverse order of asking.
  upstream_.SendTo(AnswerTo(second->data), second->from_port);
  upstream_.SendTo(AnswerTo(first->data), first->from_port);

  auto answer_a = Await(guest_a);
  auto answer_b = Await(guest_b);
  ASSERT_TRUE(answer_a && answer_b);
  EXPECT_EQ(answer_a->data, AnswerTo(MakeQuery(7, "a.test")));
  EXPECT_EQ(answer_b->data, AnswerTo(MakeQuery(7, "b.test")));
}

TEST_F(DnsForwarderTest, DropsMalformedQueriesAndResponsesAndKeepsServing) {
  auto forwarder = StartForwarder(Options());
  UdpPeer guest;
  Bytes response = AnswerTo(MakeQuery(1, "web.test"));
  guest.SendTo({}, forwarder->port());
  guest.SendTo({0xde, 0xad, 0xbe, 0xef, 0x00}, forwarder->port());
  guest.SendTo(Bytes(4097, 0), forwarder->port());
  guest.SendTo(response, forwarder->port());
  const Bytes valid = MakeQuery(2, "web.test");
  guest.SendTo(valid, forwarder->port());

  // Datagrams on loopback arrive in order: had any bad one been forwarded, it
  // would be upstream's first.
  auto forwarded = Await(upstream_);
  ASSERT_TRUE(forwarded);
  EXPECT_EQ(Body(forwarded->data), Body(valid));
  EXPECT_EQ(forwarder->stats().dropped, 4u);
  EXPECT_EQ(forwarder->stats().forwarded, 1u);

  upstream_.SendTo(AnswerTo(forwarded->data), forwarded->from_port);
  auto answer = Await(guest);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data, AnswerTo(valid));
}

TEST_F(DnsForwarderTest, RepliesFromElsewhereOrForUnknownIdsAreDropped) {
  auto forwarder = StartForwarder(Options());
  UdpPeer guest, impostor;
  const Bytes query = MakeQuery(9, "web.test");
  guest.SendTo(query, forwarder->port());
  auto forwarded = Await(upstream_);
  ASSERT_TRUE(forwarded);
  const std::uint16_t upstream_port = forwarded->from_port;

  impostor.SendTo(AnswerTo(forwarded->data), upstream_port);  // right id, wrong source
  Bytes wrong_id = AnswerTo(forwarded->data);
  wrong_id[0] ^= 0xff;
  upstream_.SendTo(wrong_id, upstream_port);
  upstream_.SendTo(forwarded->data, upstream_port);  // a query, not a response
  upstream_.SendTo(AnswerTo(forwarded->data), upstream_port);

  auto answer = Await(guest);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data, AnswerTo(query)) << "the first datagram the guest sees is the real answer";
  EXPECT_EQ(forwarder->stats().dropped, 3u);
  EXPECT_EQ(forwarder->stats().answered, 1u);
}

TEST_F(DnsForwarderTest, SilentUpstreamLeavesNoAnswerAndTheEntryExpires) {
  auto options = Options();
  options.query_timeout = 200ms;
  auto forwarder = StartForwarder(options);
  UdpPeer guest;
  guest.SendTo(MakeQuery(1, "slow.test"), forwarder->port());
  auto ignored = Await(upstream_);
  ASSERT_TRUE(ignored);
  EXPECT_EQ(forwarder->outstanding(), 1u);

  ASSERT_TRUE(RunUntil([&] { return forwarder->outstanding() == 0; }, 3000ms)) << "the entry never expired";
  EXPECT_EQ(forwarder->stats().expired, 1u);

  // Upstream's late answer is dropped; the next query still works.
  upstream_.SendTo(AnswerTo(ignored->data), ignored->from_port);
  const Bytes next = MakeQuery(2, "web.test");
  guest.SendTo(next, forwarder->port());
  auto forwarded = Await(upstream_);
  ASSERT_TRUE(forwarded);
  upstream_.SendTo(AnswerTo(forwarded->data), forwarded->from_port);
  auto answer = Await(guest);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->data, AnswerTo(next)) << "the late answer must not reach the guest";
  EXPECT_EQ(forwarder->stats().dropped, 1u);
}

TEST_F(DnsForwarderTest, TableBoundHolds) {
  auto options = Options();
  options.max_outstanding = 4;
  auto forwarder = StartForwarder(options);
  UdpPeer guest;
  for (std::uint16_t id = 1; id <= 6; ++id) guest.SendTo(MakeQuery(id, "web.test"), forwarder->port());
  ASSERT_TRUE(RunUntil([&] {
    const auto s = forwarder->stats();
    return s.forwarded + s.dropped == 6;
  }));
  EXPECT_EQ(forwarder->stats().forwarded, 4u);
  EXPECT_EQ(forwarder->stats().dropped, 2u);
  EXPECT_EQ(forwarder->outstanding(), 4u);

  std::vector<Datagram> received;
  while (auto d = upstream_.Receive()) received.push_back(std::move(*d));
  ASSERT_EQ(received.size(), 4u);

  // One answer frees one slot.
  upstream_.SendTo(AnswerTo(received[0].data), received[0].from_port);
  ASSERT_TRUE(Await(guest));
  guest.SendTo(MakeQuery(7, "web.test"), forwarder->port());
  auto seventh = Await(upstream_);
  ASSERT_TRUE(seventh);
  EXPECT_EQ(Body(seventh->data), Body(MakeQuery(7, "web.test")));
  EXPECT_EQ(forwarder->outstanding(), 4u);
}

TEST_F(DnsForwarderTest, OneGuestCannotFillTheTableAndOnlyStandardQueriesLeave) {
  auto options = Options();
  options.max_outstanding_per_guest = 3;
  auto forwarder = StartForwarder(options);
  UdpPeer guest;  // every test guest is 127.0.0.1: one VM
  for (std::uint16_t id = 1; id <= 5; ++id) guest.SendTo(MakeQuery(id, "web.test"), forwarder->port());
  ASSERT_TRUE(RunUntil([&] {
    const auto s = forwarder->stats();
    return s.forwarded + s.dropped == 5;
  }));
  EXPECT_EQ(forwarder->stats().forwarded, 3u) << "the guest's quota";
  EXPECT_EQ(forwarder->stats().dropped, 2u);
  std::vector<Datagram> received;
  while (auto d = upstream_.Receive()) received.push_back(std::move(*d));
  ASSERT_EQ(received.size(), 3u);
  upstream_.SendTo(AnswerTo(received[0].data), received[0].from_port);
  ASSERT_TRUE(Await(guest));

  for (const Bytes& query : NonStandardQueries(8, "web.test")) guest.SendTo(query, forwarder->port());
  guest.SendTo(MakeQuery(10, "web.test"), forwarder->port());
  auto tenth = Await(upstream_);
  ASSERT_TRUE(tenth) << "an answer freed a slot of the quota";
  EXPECT_EQ(Body(tenth->data), Body(MakeQuery(10, "web.test")));
  EXPECT_FALSE(upstream_.Receive().has_value()) << "only standard queries leave";
  EXPECT_EQ(forwarder->stats().dropped, 4u);
}

TEST_F(DnsForwarderTest, StopClosesThePort) {
  auto forwarder = StartForwarder(Options());
  const auto port = forwarder->port();
  forwarder->Stop();
  forwarder->Stop();
  UdpPeer guest;
  guest.SendTo(MakeQuery(1, "web.test"), port);
  RunUntil([] { return false; }, 50ms);
  EXPECT_FALSE(upstream_.Receive().has_value());
}

// Runs `f` when leaving the scope, so a failed ASSERT still joins threads.
template <class F>
struct Finally {
  F f;
  ~Finally() { f(); }
};
template <class F>
Finally(F) -> Finally<F>;

// Blocking helpers for the TCP test, whose io_context runs on its own thread.
int TcpSocket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool ReadExactly(int fd, std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::read(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

std::optional<Bytes> ReadFramed(int fd) {
  std::uint8_t length[2];
  if (!ReadExactly(fd, length, 2)) return std::nullopt;
  Bytes message((length[0] << 8) | length[1]);
  if (!ReadExactly(fd, message.data(), message.size())) return std::nullopt;
  return message;
}

void WriteFramed(int fd, const Bytes& message) {
  Bytes frame = {static_cast<std::uint8_t>(message.size() >> 8), static_cast<std::uint8_t>(message.size())};
  frame.insert(frame.end(), message.begin(), message.end());
  ASSERT_EQ(::write(fd, frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
}

TEST_F(DnsForwarderTest, TcpQueriesAreRelayedAndNonQueriesCloseTheConnection) {
  // The fake upstream's TCP side listens on the same port as its UDP side.
  int listener = TcpSocket();
  sockaddr_in addr = UdpPeer::Loopback(upstream_.port());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  std::thread fake_upstream([listener] {
    const int conn = ::accept(listener, nullptr, nullptr);
    if (conn < 0) return;
    // Answers in two writes, to show the relay copies a stream, not frames.
    while (auto query = ReadFramed(conn)) {
      Bytes answer = AnswerTo(*query);
      Bytes frame = {static_cast<std::uint8_t>(answer.size() >> 8), static_cast<std::uint8_t>(answer.size())};
      if (::write(conn, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size()) ||
          ::write(conn, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size())) {
        break;
      }
    }
    ::close(conn);
  });
  Finally join_upstream{[&] {
    ::shutdown(listener, SHUT_RDWR);
    fake_upstream.join();
    ::close(listener);
  }};

  auto options = Options();
  options.tcp_idle_timeout = 2000ms;
  auto forwarder = StartForwarder(options);
  auto work = asio::make_work_guard(io_);
  std::thread runner([this] { io_.run(); });
  Finally join_runner{[&] {
    work.reset();
    io_.stop();
    if (runner.joinable()) runner.join();
  }};

  int guest = TcpSocket();
  sockaddr_in to = UdpPeer::Loopback(forwarder->port());
  ASSERT_EQ(::connect(guest, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  for (std::uint16_t id : {0x4242, 0x4343}) {
    const Bytes query = MakeQuery(id, "big.test");
    WriteFramed(guest, query);
    auto answer = ReadFramed(guest);
    ASSERT_TRUE(answer) << "no tcp answer";
    EXPECT_EQ(*answer, AnswerTo(query)) << "the guest's own id, no rewriting over tcp";
  }
  WriteFramed(guest, AnswerTo(MakeQuery(1, "x.test")));  // a response is no query
  std::uint8_t byte;
  EXPECT_LE(::read(guest, &byte, 1), 0) << "the relay must close on a non-query";
  ::close(guest);

  work.reset();
  io_.stop();
  runner.join();
  EXPECT_EQ(forwarder->stats().tcp_connections, 1u);
}

class DnsResolvConfTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::filesystem::path path_ =
      std::filesystem::temp_directory_path() / ("avm-resolv-" + std::to_string(::getpid()));
};

TEST_F(DnsResolvConfTest, TakesTheFirstNameserverEvenTheLoopbackStub) {
  auto upstream = UpstreamFromResolvConf(Write(
      "# generated by systemd-resolved\n; another comment\nsearch example.com\n"
      "nameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0 trust-ad\n"));
  ASSERT_TRUE(upstream.has_value()) << upstream.error().ToString();
  EXPECT_EQ(upstream->address().to_string(), "127.0.0.53");
  EXPECT_EQ(upstream->port(), 53);
}

TEST_F(DnsResolvConfTest, SkipsUnparsableAndCommentedServersAndReadsIpv6) {
  auto upstream = UpstreamFromResolvConf(Write("#nameserver 1.1.1.1\nnameserver bogus\nnameserver 2001:db8::1\n"));
  ASSERT_TRUE(upstream.has_value()) << upstream.error().ToString();
  EXPECT_EQ(upstream->address().to_string(), "2001:db8::1");
}

TEST_F(DnsResolvConfTest, NoServerOrNoFileIsNotFound) {
  auto none = UpstreamFromResolvConf(Write("search example.com\n"));
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  auto missing = UpstreamFromResolvConf("/nonexistent/resolv.conf");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace agentvm
