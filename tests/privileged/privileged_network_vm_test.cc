// The network whitelist, proven with real guests. NetWorld builds two
// namespaces: the daemon's (agentvmd, its bridge and rules) and an
// "internet" joined to it by a veth pair, serving HTTP on 80, 443 and 8080
// and DNS on two addresses. Three VMs boot once for the whole suite:
//   plain   nat-filtered with the default whitelist
//   opened  nat-filtered plus TCP 8080
//   sealed  isolated (no NIC)
// Blocked connections are told apart from other failures by the daemon's
// drop counter: a refused connection is counted (then reset, or dropped
// with reject_refused_connections: false).
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/state_store.h"
#include "tests/support/command.h"
#include "tests/support/daemon.h"
#include "tests/support/net_world.h"

namespace agentvm::testing {
namespace {

using nlohmann::json;

class NetworkVmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
    world_ = new NetWorld();
    daemon_ = new Daemon({.netns = world_->daemon_ns(),
                          .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)}});
    plain_ = CreateVm(R"({"network": {"mode": "nat-filtered"}})");
    opened_ = CreateVm(R"({"network": {"mode": "nat-filtered", "allow_tcp_ports": [8080]}})");
    sealed_ = CreateVm(R"({"network": {"mode": "isolated"}})");
  }

  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
    delete world_;
    world_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(daemon_, nullptr);
    ASSERT_FALSE(plain_.empty()) << daemon_->Log();
  }

  // POST /v1/vms; returns the VM's JSON (empty on failure, with the reason).
  static json CreateVm(const std::string& body) {
    auto [status, text] = daemon_->Http("POST", "/v1/vms", body);
    EXPECT_EQ(status, 201) << text;
    json vm = json::parse(text, nullptr, false);
    if (status != 201 || !vm.is_object()) return json();
    return vm;
  }

  static json Inspect(const json& vm) {
    auto [status, text] = daemon_->Http("GET", "/v1/vms/" + vm["id"].get<std::string>());
    EXPECT_EQ(status, 200) << text;
    return json::parse(text, nullptr, false);
  }

  static std::uint64_t Dropped(const json& vm) {
    return Inspect(vm)["network"]["dropped_connections"].get<std::uint64_t>();
  }

  static std::string Address(const json& vm) { return vm["network"]["address"].get<std::string>(); }

  // `sh -c script` in the guest.
  static CommandResult Guest(const json& vm, const std::string& script) {
    return daemon_->Cli({"exec", vm["id"].get<std::string>(), "--", "sh", "-c", script});
  }

  // An HTTP GET from the guest: the body, or "" when it failed.
  static CommandResult Fetch(const json& vm, const std::string& url) {
    return Guest(vm, "timeout 5 wget -q -O- " + url);  // busybox 1.35 wget crashes on -T
  }

  static NetWorld* world_;
  static Daemon* daemon_;
  static json plain_, opened_, sealed_;
};

NetWorld* NetworkVmTest::world_ = nullptr;
Daemon* NetworkVmTest::daemon_ = nullptr;
json NetworkVmTest::plain_, NetworkVmTest::opened_, NetworkVmTest::sealed_;

std::string Web(int port) { return "http://" + std::string(NetWorld::kWebAddress) + ":" + std::to_string(port) + "/"; }

TEST_F(NetworkVmTest, VmGetsItsLeaseAndReportsIt) {
  json info = Inspect(plain_);
  EXPECT_EQ(info["network"]["mode"], "nat-filtered");
  EXPECT_EQ(info["network"]["gateway"], "10.101.0.1");
  EXPECT_NE(Address(plain_), Address(opened_));
  auto shown = Guest(plain_, "ip -4 -o addr show dev eth0");
  EXPECT_NE(shown.out.find(Address(plain_) + "/16"), std::string::npos) << shown.out << shown.err;
}

TEST_F(NetworkVmTest, WebPorts80And443AreReachable) {
  for (int port : {80, 443}) {
    auto fetched = Fetch(plain_, Web(port));
    EXPECT_EQ(fetched.exit_code, 0) << port << ": " << fetched.err;
    EXPECT_NE(fetched.out.find(std::to_string(port)), std::string::npos) << fetched.out;
  }
}

TEST_F(NetworkVmTest, Port8080IsBlockedAndCounted) {
  const std::uint64_t before = Dropped(plain_);
  auto fetched = Fetch(plain_, Web(8080));
  EXPECT_NE(fetched.exit_code, 0) << fetched.out;
  EXPECT_GT(Dropped(plain_), before) << "the drop was not counted";
}

TEST_F(NetworkVmTest, AnExtraPortOpensExactlyThatPort) {
  auto fetched = Fetch(opened_, Web(8080));
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_NE(fetched.out.find("8080"), std::string::npos) << fetched.out;
  // Another unlisted port stays closed for this VM.
  const std::uint64_t before = Dropped(opened_);
  EXPECT_NE(Guest(opened_, "echo | nc -w 3 " + std::string(NetWorld::kWebAddress) + " 8081").exit_code, 0);
  EXPECT_GT(Dropped(opened_), before);
}

TEST_F(NetworkVmTest, DnsWorksOnlyThroughTheDaemonsResolver) {
  auto answer = Guest(plain_, "nslookup web.test");
  EXPECT_EQ(answer.exit_code, 0) << answer.out << answer.err;
  EXPECT_NE(answer.out.find(NetWorld::kWebAddress), std::string::npos) << answer.out;
  EXPECT_NE(Guest(plain_, "cat /etc/resolv.conf").out.find("nameserver 10.101.0.1"), std::string::npos);

  // Straight to a server, even the daemon's own upstream: blocked.
  for (const char* server : {NetWorld::kOtherDnsAddress, NetWorld::kDnsAddress}) {
    auto direct = Guest(plain_, std::string("timeout 6 nslookup web.test ") + server);
    EXPECT_EQ(direct.out.find(std::string("Address: ") + NetWorld::kWebAddress), std::string::npos)
        << server << ": " << direct.out;
  }
}

TEST_F(NetworkVmTest, VmsCannotReachEachOther) {
  // A listener in `opened`, reachable from the host (the daemon's namespace)...
  ASSERT_EQ(Guest(opened_, "(nc -ll -p 7000 -e echo hello </dev/null >/dev/null 2>&1 &) ; sleep 0.5").exit_code, 0);
  auto from_host = RunCommand({"ip", "netns", "exec", world_->daemon_ns(), "busybox", "nc", "-w", "3",
                               Address(opened_), "7000"});
  EXPECT_NE(from_host.out.find("hello"), std::string::npos) << "control failed: " << from_host.err;
  // ...is not reachable from `plain`, not even by ping.
  EXPECT_EQ(Guest(plain_, "nc -w 3 " + Address(opened_) + " 7000 </dev/null").out.find("hello"), std::string::npos);
  EXPECT_NE(Guest(plain_, "ping -c 1 -W 2 " + Address(opened_)).exit_code, 0);
}

TEST_F(NetworkVmTest, VmCannotReachTheHostExceptDns) {
  // A listener on every address of the daemon's namespace...
  auto in_daemon_ns = [&](const std::string& script) {
    return RunCommand({"ip", "netns", "exec", world_->daemon_ns(), "sh", "-c", script});
  };
  ASSERT_EQ(in_daemon_ns("busybox nc -ll -p 8099 -e echo hello </dev/null >/dev/null 2>&1 &").exit_code, 0);
  EXPECT_NE(in_daemon_ns("sleep 0.3; busybox nc -w 2 127.0.0.1 8099 </dev/null").out.find("hello"),
            std::string::npos)
      << "control failed: the host's listener is not up";
  // ...is out of reach from a VM, on the bridge address and on the uplink.
  for (const char* host : {"10.101.0.1", "192.0.2.1"}) {
    auto reached = Guest(plain_, std::string("nc -w 3 ") + host + " 8099 </dev/null");
    EXPECT_EQ(reached.out.find("hello"), std::string::npos) << host;
  }
  in_daemon_ns("pkill -f 'nc -ll -p 8099'");
}

TEST_F(NetworkVmTest, NothingUnsolicitedComesInFromTheInternet) {
  ASSERT_EQ(Guest(plain_, "(nc -ll -p 7001 -e echo hello </dev/null >/dev/null 2>&1 &) ; sleep 0.5").exit_code, 0);
  auto from_internet = RunCommand({"ip", "netns", "exec", world_->internet_ns(), "busybox", "nc", "-w", "3",
                                   Address(plain_), "7001"});
  EXPECT_EQ(from_internet.out.find("hello"), std::string::npos) << from_internet.out;
}

TEST_F(NetworkVmTest, IsolatedVmHasNoNicAndStillExecs) {
  auto links = Guest(sealed_, "ls /sys/class/net");
  EXPECT_EQ(links.exit_code, 0) << links.err;
  EXPECT_EQ(links.out, "lo\n");
  EXPECT_EQ(Inspect(sealed_)["network"]["mode"], "isolated");
}

// Last: it takes the address of `opened` and puts its own back afterwards.
TEST_F(NetworkVmTest, SpoofedSourceAddressIsDropped) {
  const std::string own = Address(plain_) + "/16";
  const std::string stolen = Address(opened_) + "/16";
  const std::string switch_to = "ip addr flush dev eth0 && ip addr add %s dev eth0 && ip route add default via 10.101.0.1";
  auto use = [&](const std::string& address) {
    std::string script = switch_to;
    script.replace(script.find("%s"), 2, address);
    return Guest(plain_, script);
  };
  ASSERT_EQ(use(stolen).exit_code, 0);
  auto spoofed = Fetch(plain_, Web(80));
  ASSERT_EQ(use(own).exit_code, 0);
  EXPECT_NE(spoofed.exit_code, 0) << "a packet with another VM's source address got through";
  EXPECT_EQ(Fetch(plain_, Web(80)).exit_code, 0) << "the VM's own address should work again";
}

TEST_F(NetworkVmTest, BadNetworkRequestsChangeNothing) {
  auto before = daemon_->Http("GET", "/v1/vms");
  for (const char* body : {R"({"network": {"mode": "open"}})",
                           R"({"network": {"mode": "nat-filtered", "allow_tcp_ports": [0]}})",
                           R"({"network": {"mode": "nat-filtered", "allow_tcp_ports": [53]}})",
                           R"({"network": {"mode": "nat-filtered", "allow_cidrs": ["10.0.0.1/8"]}})",
                           R"({"network": {"mode": "isolated", "allow_tcp_ports": [8080]}})",
                           R"({"network": {"mode": "bridge"}})",
                           R"({"network": {"mode": "bridge", "bridge": "no-such-br"}})",
                           // Unfiltered on our own bridge would reach every VM.
                           R"({"network": {"mode": "bridge", "bridge": "agentvm0"}})"}) {
    auto [status, text] = daemon_->Http("POST", "/v1/vms", body);
    EXPECT_GE(status, 400) << body;
    EXPECT_LT(status, 500) << body << ": " << text;
  }
  EXPECT_EQ(daemon_->Http("GET", "/v1/vms"), before);
}

// Removing VMs frees their taps and leases; stopping the daemon removes the
// bridge and tables; a crashed daemon's leftovers go when the next starts.
TEST(NetworkCleanupTest, NothingIsLeftBehind) {
  ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
  NetWorld world;
  auto ruleset = [&] { return RunCommand({"ip", "netns", "exec", world.daemon_ns(), "nft", "list", "ruleset"}).out; };
  auto links = [&] { return RunCommand({"ip", "netns", "exec", world.daemon_ns(), "ip", "-o", "link"}).out; };
  const std::string rules_before = ruleset();
  const std::string links_before = links();
  std::string state_dir;
  {
    Daemon daemon({.netns = world.daemon_ns(), .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)}});
    state_dir = daemon.state_dir();
    auto [status, text] = daemon.Http("POST", "/v1/vms", R"({"network": {"mode": "nat-filtered"}})");
    ASSERT_EQ(status, 201) << text << daemon.Log();
    const std::string id = json::parse(text)["id"];
    const std::string tap = json::parse(text)["network"]["tap"];
    EXPECT_NE(links().find("agentvm0"), std::string::npos);
    EXPECT_NE(links().find(tap), std::string::npos);
    EXPECT_NE(ruleset().find("table inet agentvm"), std::string::npos);

    // A crash leaves QEMU, tap, bridge and rules; a QEMU that dies before
    // the next daemon starts cannot be adopted, so that daemon clears them.
    const int pid = json::parse(daemon.Http("GET", "/v1/vms/" + id).second).value("pid", 0);
    ASSERT_GT(pid, 0);
    daemon.Crash();
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    for (int i = 0; i < 100 && links().find(tap) != std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    daemon.Restart();
    EXPECT_EQ(links().find(tap), std::string::npos) << links();
    EXPECT_EQ(links().find("agentvm0"), std::string::npos) << links();
    EXPECT_EQ(ruleset(), rules_before);
    // The VM is listed as failed and still holds its lease until removed.
    {
      auto store = StateStore::Open(state_dir + "/agentvm.db");
      ASSERT_TRUE(store.has_value());
      EXPECT_EQ((*store)->ListLeases()->size(), 1u);
    }
    EXPECT_EQ(daemon.Cli({"rm", id}).exit_code, 0) << daemon.Log();
    auto store = StateStore::Open(state_dir + "/agentvm.db");
    ASSERT_TRUE(store.has_value());
    EXPECT_TRUE((*store)->ListLeases()->empty());

    // A second VM brings the network up again; stopping the daemon takes it down.
    auto [again, again_text] = daemon.Http("POST", "/v1/vms", R"({"network": {"mode": "nat-filtered"}})");
    ASSERT_EQ(again, 201) << again_text;
  }
  EXPECT_EQ(ruleset(), rules_before);
  EXPECT_EQ(links(), links_before);
}

}  // namespace
}  // namespace agentvm::testing
