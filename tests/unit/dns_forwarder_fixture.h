// Test helpers for the DNS forwarder's unit tests: hand-built DNS messages
// and a non-blocking UDP socket on 127.0.0.1 that plays guest or upstream.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "netsetup/dns_forwarder.h"

namespace agentvm {

using Bytes = std::vector<std::uint8_t>;
namespace asio = boost::asio;
using namespace std::chrono_literals;

// Appends `name` in wire format (no compression).
inline void AppendName(Bytes& m, const std::string& name) {
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<std::uint8_t>(dot - start));
    m.insert(m.end(), name.begin() + start, name.begin() + dot);
    start = dot + 1;
  }
  m.push_back(0);
}

// A DNS query for `name`, type A, class IN.
inline Bytes MakeQuery(std::uint16_t id, const std::string& name) {
  Bytes q = {static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  AppendName(q, name);
  q.insert(q.end(), {0, 1, 0, 1});
  return q;
}

// The two kinds of query a forwarder must never relay: an UPDATE, and a
// QUERY with two questions.
inline std::vector<Bytes> NonStandardQueries(std::uint16_t first_id, const std::string& name) {
  Bytes update = MakeQuery(first_id, name);
  update[2] |= 5 << 3;  // opcode UPDATE
  Bytes two_questions = MakeQuery(static_cast<std::uint16_t>(first_id + 1), name);
  two_questions[5] = 2;
  return {update, two_questions};
}

inline std::uint16_t IdOf(const Bytes& m) { return static_cast<std::uint16_t>((m.at(0) << 8) | m.at(1)); }

// What the fake upstream answers: the query itself marked as a response.
inline Bytes AnswerTo(const Bytes& query) {
  Bytes reply = query;
  reply[2] |= 0x80;
  return reply;
}


// One answer record: a CNAME to `data` or an A record of address `data`.
struct TestRecord {
  std::string owner;
  bool cname = false;
  std::string data;  // target name, or "a.b.c.d"
  std::uint32_t ttl = 300;
};

// The answer upstream gives to `query` (whose question ends the message):
// the query marked as a response with `records` in the answer section.
inline Bytes AnswerWith(const Bytes& query, const std::vector<TestRecord>& records) {
  Bytes reply = AnswerTo(query);
  reply[7] = static_cast<std::uint8_t>(records.size());
  for (const TestRecord& record : records) {
    AppendName(reply, record.owner);
    reply.insert(reply.end(), {0, static_cast<std::uint8_t>(record.cname ? 5 : 1), 0, 1});
    for (int shift : {24, 16, 8, 0}) reply.push_back(static_cast<std::uint8_t>(record.ttl >> shift));
    Bytes data;
    if (record.cname) {
      AppendName(data, record.data);
    } else {
      in_addr address{};
      ::inet_pton(AF_INET, record.data.c_str(), &address);
      const auto* bytes = reinterpret_cast<const std::uint8_t*>(&address.s_addr);
      data.assign(bytes, bytes + 4);
    }
    reply.push_back(static_cast<std::uint8_t>(data.size() >> 8));
    reply.push_back(static_cast<std::uint8_t>(data.size()));
    reply.insert(reply.end(), data.begin(), data.end());
  }
  return reply;
}

// Everything after the id: what must arrive unchanged in both directions.
inline Bytes Body(const Bytes& m) { return Bytes(m.begin() + 2, m.end()); }

struct Datagram {
  Bytes data;
  std::uint16_t from_port;
};

// A non-blocking UDP socket on 127.0.0.1, used as guest or as upstream.
class UdpPeer {
 public:
  UdpPeer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr = Loopback(0);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("udp peer bind");
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~UdpPeer() { ::close(fd_); }
  UdpPeer(const UdpPeer&) = delete;
  UdpPeer& operator=(const UdpPeer&) = delete;

  std::uint16_t port() const { return port_; }

  void SendTo(const Bytes& data, std::uint16_t port) const {
    sockaddr_in to = Loopback(port);
    ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }

  std::optional<Datagram> Receive() const {
    Bytes buffer(70000);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<std::size_t>(n));
    return Datagram{std::move(buffer), ntohs(from.sin_port)};
  }

  static sockaddr_in Loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// A forwarder on 127.0.0.1 against `upstream_`, driven by running io_.
class DnsForwarderFixture : public ::testing::Test {
 protected:
  asio::ip::udp::endpoint Loopback(std::uint16_t port) {
    return asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port);
  }

  DnsForwarderOptions Options() {
    DnsForwarderOptions options;
    options.listen = Loopback(0);
    options.upstream = Loopback(upstream_.port());
    return options;
  }

  std::unique_ptr<DnsForwarder> StartForwarder(DnsForwarderOptions options) {
    auto forwarder = std::make_unique<DnsForwarder>(io_.get_executor(), std::move(options));
    auto started = forwarder->Start();
    EXPECT_TRUE(started.has_value()) << started.error().ToString();
    return forwarder;
  }

  // Runs the io_context until `done` or 5 s; false on timeout.
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(2ms);
    }
    return true;
  }

  // Runs until `peer` gets a datagram.
  std::optional<Datagram> Await(const UdpPeer& peer) {
    std::optional<Datagram> got;
    RunUntil([&] { return (got = peer.Receive()).has_value(); });
    return got;
  }

  asio::io_context io_;
  UdpPeer upstream_;
};

}  // namespace agentvm
