// Packets through the firewall, without QEMU: a "host" namespace with the
// bridge and the ruleset, two "VM" namespaces hanging off the bridge by veth
// (the host end named like a tap and isolated like one), and a "world"
// namespace as the uplink. Servers and clients are threads that entered
// their namespace; every connection attempt has a short deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netsetup/firewall.h"
#include "netsetup/links.h"
#include "netsetup/net_names.h"
#include "tests/support/command.h"
#include "tests/support/netns.h"
#include "tests/support/net_traffic.h"

namespace agentvm::net {
namespace {

using testing::NetNamespace;
using testing::RunCommand;
using namespace testing::traffic;

// Bytes a TCP client in `ns` read from address:port in `period`.
std::size_t Download(const std::string& ns, const std::string& address, std::uint16_t port,
                     std::chrono::milliseconds period) {
  return InNetns<std::size_t>(ns, 0, [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to = Endpoint(address, port);
    std::size_t total = 0;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
      const auto end = std::chrono::steady_clock::now() + period;
      char buffer[64 * 1024];
      while (std::chrono::steady_clock::now() < end) {
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        total += static_cast<std::size_t>(n);
      }
    }
    ::close(fd);
    return total;
  });
}

// A TCP client in `ns` sending to address:port as fast as it can for `period`.
void Upload(const std::string& ns, const std::string& address, std::uint16_t port, std::chrono::milliseconds period) {
  InNetns<bool>(ns, false, [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to = Endpoint(address, port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
      const auto end = std::chrono::steady_clock::now() + period;
      std::vector<char> chunk(64 * 1024, 'y');
      std::size_t sent = 0;
      while (std::chrono::steady_clock::now() < end && sent < kBulkBytes) {
        pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        ssize_t n = ::send(fd, chunk.data(), std::min(chunk.size(), kBulkBytes - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN) break;
        if (n > 0) sent += static_cast<std::size_t>(n);
      }
    }
    ::close(fd);
    return true;
  });
}

// Small, so a test can reach it; the other tests never hold this many.
constexpr std::uint32_t kMaxConnections = 16;

// A TCP listener in `ns` that never accepts: the kernel completes handshakes
// into its backlog, so each connection stays established while the test holds it.
class Listener {
 public:
  Listener(const std::string& ns, std::uint16_t port) {
    fd_ = InNetns<int>(ns, -1, [&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sa = Endpoint("0.0.0.0", port);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || ::listen(fd, 256) < 0) {
        ::close(fd);
        return -1;
      }
      return fd;
    });
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Closes with a reset (SO_LINGER 0): conntrack forgets the connection at
// once instead of keeping it through FIN_WAIT.
void Abort(int fd) {
  linger reset{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
}

// Starts `count` TCP connections from `ns` to address:port at once; the
// sockets of those that were established (the caller closes them).
std::vector<int> ConnectMany(const std::string& ns, const std::string& address, std::uint16_t port, int count) {
  return InNetns<std::vector<int>>(ns, {}, [&] {
    std::vector<int> pending;
    for (int i = 0; i < count; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      sockaddr_in to = Endpoint(address, port);
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
      pending.push_back(fd);
    }
    std::vector<int> established;
    for (int fd : pending) {
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      int error = -1;
      socklen_t len = sizeof error;
      if (::poll(&p, 1, kDeadline.count()) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 &&
          error == 0) {
        established.push_back(fd);
      } else {
        ::close(fd);
      }
    }
    return established;
  });
}

class NetTrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
    bool built = InNetns<bool>(host_.name(), false, [&] {
      auto bridge = EnsureBridge("agentvm0", *Ipv4Address::Parse("10.101.0.1"), 16);
      if (!bridge || !EnableIpv4Forwarding()) return false;
      auto made = Firewall::Create(FirewallConfig{.bridge = "agentvm0",
                                                  .subnet = *Ipv4Subnet::Parse("10.101.0.0/16"),
                                                  .gateway = *Ipv4Address::Parse("10.101.0.1"),
                                                  .max_connections_per_vm = kMaxConnections});
      if (!made) return false;
      firewall_ = std::move(*made);
      return true;
    });
    ASSERT_TRUE(built);
    Ip(host_.name(), "link set lo up");  // the host's own addresses are reached through it
    // Uplink: host 192.0.2.1 <-> world 192.0.2.2, which routes the VMs' subnet
    // back only for the inbound test (masquerade makes replies need none).
    Ip(host_.name(), "link add uplink type veth peer name eth0 netns " + world_.name());
    Ip(host_.name(), "addr add 192.0.2.1/24 dev uplink");
    Ip(host_.name(), "link set uplink up");
    Ip(host_.name(), "route add default via 192.0.2.2");
    Ip(world_.name(), "addr add 192.0.2.2/24 dev eth0");
    Ip(world_.name(), "link set eth0 up");
    Ip(world_.name(), "link set lo up");
    Ip(world_.name(), "route add 10.101.0.0/16 via 192.0.2.1");
    AddVm(vm1_, vm1_rules_);
    AddVm(vm2_, vm2_rules_);
  }

  void TearDown() override { firewall_.reset(); }

  // A "VM": its namespace's eth0 is the peer of a port named like its tap.
  void AddVm(const NetNamespace& vm, const VmNetRules& rules) {
    Ip(host_.name(), "link add " + rules.tap + " type veth peer name eth0 netns " + vm.name());
    Ip(host_.name(), "link set " + rules.tap + " master agentvm0");
    Ip(host_.name(), "link set dev " + rules.tap + " type bridge_slave isolated on");
    Ip(host_.name(), "link set " + rules.tap + " up");
    Ip(vm.name(), "link set lo up");
    Ip(vm.name(), "link set eth0 address " + MacForAddress(rules.address));
    Ip(vm.name(), "addr add " + rules.address.ToString() + "/16 dev eth0");
    Ip(vm.name(), "link set eth0 up");
    Ip(vm.name(), "route add default via 10.101.0.1");
    auto added = firewall_->AddVm(rules);
    ASSERT_TRUE(added.has_value()) << added.error().message;
  }

  std::uint64_t Dropped(const VmNetRules& rules) {
    auto dropped = firewall_->DroppedPackets(rules.address);
    EXPECT_TRUE(dropped.has_value()) << dropped.error().message;
    return dropped.value_or(0);
  }

  // Packets the bridge table dropped (spoofed sources, other ethertypes).
  std::uint64_t BridgeDrops() {
    auto out = RunCommand({"ip", "netns", "exec", host_.name(), "nft", "list", "chain", "bridge", "agentvm",
                           "prerouting"}).out;
    std::smatch match;
    if (!std::regex_search(out, match, std::regex("counter packets (\\d+)"))) return 0;
    return std::stoull(match[1]);
  }

  NetNamespace host_{"avmnet-host"};
  NetNamespace world_{"avmnet-world"};
  NetNamespace vm1_{"avmnet-vm1"};
  NetNamespace vm2_{"avmnet-vm2"};
  const VmNetRules vm1_rules_{.tap = TapNameForVm("vm-1"), .address = *Ipv4Address::Parse("10.101.0.2")};
  const VmNetRules vm2_rules_{.tap = TapNameForVm("vm-2"),
                              .address = *Ipv4Address::Parse("10.101.0.3"),
                              .extra_tcp_ports = {8080}};
  std::unique_ptr<Firewall> firewall_;
};

TEST_F(NetTrafficTest, WhitelistedPortsGoOutMasqueradedAndTheRestIsCounted) {
  Server http(world_.name(), "0.0.0.0", 80);
  Server https(world_.name(), "0.0.0.0", 443);
  Server other(world_.name(), "0.0.0.0", 8080);
  Server odd(world_.name(), "0.0.0.0", 9999);
  ASSERT_TRUE(http.ok() && https.ok() && other.ok() && odd.ok());

  EXPECT_TRUE(TcpWorks(vm1_.name(), "192.0.2.2", 80));
  EXPECT_EQ(http.last_peer(), "192.0.2.1") << "masqueraded to the uplink address";
  EXPECT_TRUE(TcpWorks(vm1_.name(), "192.0.2.2", 443));
  EXPECT_EQ(Dropped(vm1_rules_), 0u);
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.0.2.2", 8080));
  EXPECT_GE(Dropped(vm1_rules_), 1u) << "the refused SYN is counted against VM 1";
  // VM 2's extra port opens exactly that port, for VM 2 only.
  EXPECT_TRUE(TcpWorks(vm2_.name(), "192.0.2.2", 8080));
  EXPECT_FALSE(TcpWorks(vm2_.name(), "192.0.2.2", 9999));
  EXPECT_GE(Dropped(vm2_rules_), 1u);
}

TEST_F(NetTrafficTest, OneVmCannotHoldMoreThanItsConnectionLimit) {
  Listener held(world_.name(), 443);
  Server http(world_.name(), "0.0.0.0", 80);
  ASSERT_TRUE(held.ok() && http.ok());
  constexpr int kBeyond = 4;
  const std::uint64_t before = Dropped(vm1_rules_);
  const auto started = std::chrono::steady_clock::now();
  std::vector<int> open = ConnectMany(vm1_.name(), "192.0.2.2", 443, kMaxConnections + kBeyond);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1)) << "refused with resets";
  EXPECT_EQ(open.size(), kMaxConnections) << "exactly the ones beyond the limit are refused";
  EXPECT_GE(Dropped(vm1_rules_), before + kBeyond) << "and counted against VM 1";
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.0.2.2", 80)) << "VM 1 is at its limit on every port";
  EXPECT_TRUE(TcpWorks(vm2_.name(), "192.0.2.2", 80)) << "another VM's address still connects";

  for (int fd : open) Abort(fd);
  // The resets cross the bridge asynchronously; the count drops once
  // conntrack has seen them.
  bool room = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!room && std::chrono::steady_clock::now() < deadline) {
    room = TcpWorks(vm1_.name(), "192.0.2.2", 80);
    if (!room) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(room) << "closed connections give VM 1 room again";
}

TEST_F(NetTrafficTest, PrivateRangesAreClosedUnlessTheVmsAllowCidrsOpenThem) {
  // The "world" also answers on a LAN address and a container-network one.
  Ip(world_.name(), "addr add 192.168.77.7/32 dev lo");
  Ip(world_.name(), "addr add 172.16.5.5/32 dev lo");
  Server http(world_.name(), "0.0.0.0", 80);
  ASSERT_TRUE(http.ok());
  NetNamespace vm3{"avmnet-vm3"};
  const VmNetRules opened{.tap = TapNameForVm("vm-3"),
                          .address = *Ipv4Address::Parse("10.101.0.4"),
                          .extra_cidrs = {*Ipv4Subnet::Parse("192.168.77.0/24")}};
  AddVm(vm3, opened);

  EXPECT_TRUE(TcpWorks(vm1_.name(), "192.0.2.2", 80)) << "the internet stays open";
  const std::uint64_t before = Dropped(vm1_rules_);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.168.77.7", 80));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1)) << "refused with a reset";
  EXPECT_FALSE(TcpWorks(vm1_.name(), "172.16.5.5", 80));
  EXPECT_GE(Dropped(vm1_rules_), before + 2);
  // allow_cidrs opens its range on the allowed ports, and only its range.
  EXPECT_TRUE(TcpWorks(vm3.name(), "192.168.77.7", 80));
  EXPECT_FALSE(TcpWorks(vm3.name(), "172.16.5.5", 80));
  ASSERT_TRUE(firewall_->RemoveVm(opened.tap, opened.address).has_value());
}

TEST_F(NetTrafficTest, DnsGoesOnlyToTheGateway) {
  Server resolver(host_.name(), "10.101.0.1", 53, Mode::kEcho);
  Server elsewhere(world_.name(), "0.0.0.0", 53, Mode::kEcho);
  ASSERT_TRUE(resolver.ok() && elsewhere.ok());
  EXPECT_TRUE(UdpWorks(vm1_.name(), "10.101.0.1", 53));
  EXPECT_FALSE(UdpWorks(vm1_.name(), "192.0.2.2", 53));
  EXPECT_GE(Dropped(vm1_rules_), 1u);
}

TEST_F(NetTrafficTest, NoVmToHostNoVmToVmNothingUnsolicitedIn) {
  Server host_service(host_.name(), "0.0.0.0", 8080);
  Server vm2_service(vm2_.name(), "0.0.0.0", 80);
  Server vm1_service(vm1_.name(), "0.0.0.0", 80);
  ASSERT_TRUE(host_service.ok() && vm2_service.ok() && vm1_service.ok());
  // Sanity: the servers answer where nothing filters.
  ASSERT_TRUE(TcpWorks(host_.name(), "10.101.0.1", 8080));
  ASSERT_TRUE(TcpWorks(vm2_.name(), "127.0.0.1", 80));

  EXPECT_FALSE(TcpWorks(vm1_.name(), "10.101.0.1", 8080)) << "VM to host";
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.0.2.1", 8080)) << "VM to the host's other address";
  EXPECT_FALSE(TcpWorks(vm1_.name(), "10.101.0.3", 80)) << "VM to VM on the bridge";
  Ip(vm1_.name(), "route add 10.101.0.3/32 via 10.101.0.1");
  EXPECT_FALSE(TcpWorks(vm1_.name(), "10.101.0.3", 80)) << "VM to VM routed through the host";
  EXPECT_FALSE(TcpWorks(world_.name(), "10.101.0.2", 80)) << "world to VM";
  EXPECT_GE(Dropped(vm1_rules_), 3u);
}

TEST_F(NetTrafficTest, ASpoofedSourceIsDroppedOnTheBridge) {
  Server http(world_.name(), "0.0.0.0", 80);
  ASSERT_TRUE(http.ok());
  ASSERT_TRUE(TcpWorks(vm1_.name(), "192.0.2.2", 80));
  const std::uint64_t before = BridgeDrops();

  Ip(vm1_.name(), "addr add 10.101.0.99/16 dev eth0");
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.0.2.2", 80, "10.101.0.99")) << "an address that is not its lease";
  Ip(vm1_.name(), "addr add 10.101.0.3/32 dev eth0");
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.0.2.2", 80, "10.101.0.3")) << "VM 2's address";
  EXPECT_GT(BridgeDrops(), before);

  // Its own address, but another MAC: the bridge would learn a stolen MAC.
  Ip(vm1_.name(), "link set eth0 address 02:00:0a:65:00:03");
  EXPECT_FALSE(TcpWorks(vm1_.name(), "192.0.2.2", 80, "10.101.0.2"));
  Ip(vm1_.name(), "link set eth0 address " + MacForAddress(vm1_rules_.address));
  Ip(vm1_.name(), "neigh flush all");
  EXPECT_TRUE(TcpWorks(vm1_.name(), "192.0.2.2", 80, "10.101.0.2")) << "back to its own identity";
}

TEST_F(NetTrafficTest, AVmWithoutRulesGetsNowhere) {
  Server http(world_.name(), "0.0.0.0", 80);
  ASSERT_TRUE(http.ok());
  ASSERT_TRUE(TcpWorks(vm2_.name(), "192.0.2.2", 80));
  // What a tap the supervisor has not registered (yet, or any more) can do:
  // the bridge table lets it pass, the inet table lets nothing out.
  ASSERT_TRUE(firewall_->RemoveVm(vm2_rules_.tap, vm2_rules_.address).has_value());
  EXPECT_FALSE(TcpWorks(vm2_.name(), "192.0.2.2", 80));
  EXPECT_TRUE(TcpWorks(vm1_.name(), "192.0.2.2", 80)) << "VM 1 is unaffected";
  ASSERT_TRUE(firewall_->AddVm(vm2_rules_).has_value());
  EXPECT_TRUE(TcpWorks(vm2_.name(), "192.0.2.2", 80)) << "and back";
}

TEST_F(NetTrafficTest, BandwidthLimitHoldsBothWays) {
  Server bulk(world_.name(), "0.0.0.0", 80, Mode::kBulk);
  Server sink(world_.name(), "0.0.0.0", 443, Mode::kSink);
  ASSERT_TRUE(bulk.ok() && sink.ok());
  constexpr std::uint64_t kRate = 100'000;  // bytes per second
  VmNetRules limited = vm2_rules_;
  limited.bytes_per_second = kRate;
  ASSERT_TRUE(firewall_->RemoveVm(vm2_rules_.tap, vm2_rules_.address).has_value());
  ASSERT_TRUE(firewall_->AddVm(limited).has_value());
  const auto period = std::chrono::milliseconds(2000);
  // At most: the period at the rate, one second's bucket and the burst.
  const std::size_t ceiling = kRate * 2 + kRate + 128 * 1024 + 64 * 1024;

  EXPECT_EQ(Download(vm1_.name(), "192.0.2.2", 80, period), kBulkBytes) << "VM 1 has no limit";
  const std::size_t down = Download(vm2_.name(), "192.0.2.2", 80, period);
  EXPECT_GT(down, 10'000u);
  EXPECT_LT(down, ceiling) << "world to VM 2 is limited";

  Upload(vm2_.name(), "192.0.2.2", 443, period);
  const std::size_t up = sink.received();
  EXPECT_GT(up, 10'000u);
  EXPECT_LT(up, ceiling) << "VM 2 to world is limited";
}

}  // namespace
}  // namespace agentvm::net
