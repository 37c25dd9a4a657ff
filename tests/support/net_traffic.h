// Traffic helpers for the privileged network tests: threads that enter a
// network namespace to serve or to connect, each with a short deadline, and
// `ip -n` with an assertion. Header-only: every test binary that includes it
// is a privileged one.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/command.h"

namespace agentvm::testing::traffic {

constexpr auto kDeadline = std::chrono::milliseconds(1000);

inline bool EnterNetns(const std::string& ns) {
  const int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool entered = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return entered;
}

// Runs `body` on a thread inside `ns` and returns its result; `fallback` if
// the namespace could not be entered (the body never runs outside it).
template <class T>
T InNetns(const std::string& ns, T fallback, const std::function<T()>& body) {
  std::packaged_task<T()> task([&] { return EnterNetns(ns) ? body() : fallback; });
  auto result = task.get_future();
  std::thread(std::move(task)).join();
  return result.get();
}

inline sockaddr_in Endpoint(const std::string& address, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  return sa;
}

enum class Mode {
  kHi,    // TCP: answers "hi" and closes
  kEcho,  // UDP: echoes each datagram
  kBulk,  // TCP: sends kBulkBytes and closes
  kSink,  // TCP: reads and counts everything
};

constexpr std::size_t kBulkBytes = 2 * 1024 * 1024;

// A server on address:port in `ns`, one client at a time, remembering the
// peer address of the last client it saw.
class Server {
 public:
  Server(std::string ns, std::string address, std::uint16_t port, Mode mode = Mode::kHi) {
    std::promise<bool> ready;
    auto ready_future = ready.get_future();
    const bool udp = mode == Mode::kEcho;
    thread_ = std::thread([this, ns, address, port, udp, mode, ready = std::move(ready)]() mutable {
      if (!EnterNetns(ns)) return ready.set_value(false);
      const int fd = ::socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sa = Endpoint(address, port);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || (!udp && ::listen(fd, 16) < 0)) {
        ::close(fd);
        return ready.set_value(false);
      }
      ready.set_value(true);
      while (!stop_) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        // The peer is recorded before answering: a client that got its
        // answer may ask for it at once.
        if (udp) {
          char buf[512];
          ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
          if (n <= 0) continue;
          RecordPeer(peer);
          ::sendto(fd, buf, n, 0, reinterpret_cast<sockaddr*>(&peer), len);
        } else {
          int client = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
          if (client < 0) continue;
          RecordPeer(peer);
          if (mode == Mode::kHi) (void)!::write(client, "hi", 2);
          if (mode == Mode::kBulk) Bulk(client);
          if (mode == Mode::kSink) Sink(client);
          ::close(client);
        }
      }
      ::close(fd);
    });
    ok_ = ready_future.get();
  }
  ~Server() {
    stop_ = true;
    thread_.join();
  }

  bool ok() const { return ok_; }
  std::string last_peer() const {
    auto peer = last_peer_.load();
    return peer ? *peer : "";
  }
  std::size_t received() const { return received_; }

 private:
  void RecordPeer(const sockaddr_in& peer) {
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    last_peer_.store(std::make_shared<std::string>(text));
  }
  void Bulk(int client) {
    std::vector<char> chunk(64 * 1024, 'x');
    std::size_t sent = 0;
    while (sent < kBulkBytes && !stop_) {
      pollfd p{.fd = client, .events = POLLOUT, .revents = 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::send(client, chunk.data(), std::min(chunk.size(), kBulkBytes - sent), MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }
  void Sink(int client) {
    char buffer[64 * 1024];
    while (!stop_) {
      pollfd p{.fd = client, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      received_ += static_cast<std::size_t>(n);
    }
  }

  std::atomic<std::size_t> received_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::shared_ptr<std::string>> last_peer_;
  bool ok_ = false;
  std::thread thread_;
};

// True when a TCP connection from `ns` (from `source` if given) to
// address:port got the server's "hi" before the deadline.
inline bool TcpWorks(const std::string& ns, const std::string& address, std::uint16_t port,
              const std::string& source = "") {
  return InNetns<bool>(ns, false, [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (!source.empty()) {
      sockaddr_in from = Endpoint(source, 0);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) < 0) {
        ::close(fd);
        return false;
      }
    }
    sockaddr_in to = Endpoint(address, port);
    ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    char buf[2] = {};
    const bool got = ::poll(&p, 1, kDeadline.count()) == 1 && ::read(fd, buf, 2) == 2 && buf[0] == 'h';
    ::close(fd);
    return got;
  });
}

// True when a UDP datagram from `ns` to address:port came back in time.
inline bool UdpWorks(const std::string& ns, const std::string& address, std::uint16_t port) {
  return InNetns<bool>(ns, false, [&] {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to = Endpoint(address, port);
    ::sendto(fd, "q", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    char buf[4];
    const bool got = ::poll(&p, 1, kDeadline.count()) == 1 && ::recv(fd, buf, sizeof buf, 0) == 1;
    ::close(fd);
    return got;
  });
}

inline void Ip(const std::string& ns, const std::string& args) {
  std::vector<std::string> argv = {"ip", "-n", ns};
  std::istringstream words(args);
  for (std::string word; words >> word;) argv.push_back(word);
  auto result = RunCommand(argv, std::chrono::seconds(10));
  ASSERT_EQ(result.exit_code, 0) << "ip -n " << ns << " " << args << ": " << result.err;
}

}  // namespace agentvm::testing::traffic
