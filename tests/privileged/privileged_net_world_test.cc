// The privileged tier's "internet": a NetWorld must give the daemon's
// namespace real HTTP and DNS servers behind a veth uplink, and leave no
// namespace, link or process behind.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/command.h"
#include "tests/support/net_world.h"

namespace agentvm::testing {
namespace {

using namespace std::chrono_literals;

class NetWorldTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root"; }
};

bool NamespaceExists(const std::string& name) {
  auto list = RunCommand({"ip", "netns", "list"}, 10s);
  for (std::size_t start = 0; start < list.out.size();) {
    std::size_t end = list.out.find('\n', start);
    if (end == std::string::npos) end = list.out.size();
    const std::string line = list.out.substr(start, end - start);
    if (line == name || line.rfind(name + " ", 0) == 0) return true;
    start = end + 1;
  }
  return false;
}

TEST_F(NetWorldTest, DaemonNamespaceReachesEveryHttpPort) {
  NetWorld world;
  for (int port : NetWorld::kHttpPorts) {
    const std::string url = "http://" + std::string(NetWorld::kWebAddress) + ":" + std::to_string(port) + "/";
    auto got = world.InDaemon({"busybox", "wget", "-q", "-O-", url}, 10s);
    EXPECT_EQ(got.exit_code, 0) << url << ": " << got.err;
    EXPECT_EQ(got.out, NetWorld::HttpBody(port)) << url;
  }
}

TEST_F(NetWorldTest, BothDnsServersResolveWebTestForTheDaemonNamespace) {
  NetWorld world;
  for (const std::string server : {NetWorld::kDnsAddress, NetWorld::kOtherDnsAddress}) {
    auto answer = world.InDaemon({"busybox", "nslookup", NetWorld::kWebName, server}, 10s);
    EXPECT_EQ(answer.exit_code, 0) << server << ": " << answer.out << answer.err;
    EXPECT_NE(answer.out.find(std::string("Address: ") + NetWorld::kWebAddress), std::string::npos)
        << server << ": " << answer.out;
    // The server saw the query arrive from the daemon's uplink address.
    EXPECT_NE(world.DnsLog(server).find(std::string("query[A] web.test from ") + NetWorld::kUplinkAddress),
              std::string::npos)
        << world.DnsLog(server);
  }
}

TEST_F(NetWorldTest, InternetRoutesTheVmSubnetBackToTheDaemon) {
  NetWorld world;
  auto route = world.InInternet({"ip", "route", "get", "10.101.0.7"}, 10s);
  ASSERT_EQ(route.exit_code, 0) << route.err;
  EXPECT_NE(route.out.find(std::string("via ") + NetWorld::kUplinkAddress), std::string::npos) << route.out;

  auto default_route = world.InDaemon({"ip", "route", "show", "default"}, 10s);
  EXPECT_NE(default_route.out.find(std::string("via ") + NetWorld::kInternetAddress), std::string::npos)
      << default_route.out;
  auto uplink = world.InDaemon({"ip", "-o", "-4", "addr", "show", "dev", NetWorld::kUplink}, 10s);
  EXPECT_NE(uplink.out.find(std::string(NetWorld::kUplinkAddress) + "/24"), std::string::npos) << uplink.out;

  // Neither end of the veth pair ever shows up in the root namespace.
  auto root_links = RunCommand({"ip", "-o", "link", "show"}, 10s);
  EXPECT_EQ(root_links.out.find(std::string(" ") + NetWorld::kUplink + "@"), std::string::npos) << root_links.out;
  EXPECT_EQ(root_links.out.find(" inet0@"), std::string::npos) << root_links.out;
}

TEST_F(NetWorldTest, DestructionLeavesNoNamespaceAndNoProcess) {
  std::string daemon_ns, internet_ns, dir;
  std::vector<pid_t> pids;
  {
    NetWorld world;
    daemon_ns = world.daemon_ns();
    internet_ns = world.internet_ns();
    dir = world.dir().string();
    pids = world.server_pids();
    EXPECT_EQ(daemon_ns.rfind("avmtest-", 0), 0u) << daemon_ns;
    EXPECT_EQ(internet_ns.rfind("avmtest-", 0), 0u) << internet_ns;
    EXPECT_TRUE(NamespaceExists(daemon_ns));
    EXPECT_TRUE(NamespaceExists(internet_ns));
    EXPECT_EQ(pids.size(), 5u) << "three HTTP servers and two DNS servers";
    EXPECT_TRUE(ProcessWithArgExists(dir));
  }
  EXPECT_FALSE(NamespaceExists(daemon_ns));
  EXPECT_FALSE(NamespaceExists(internet_ns));
  for (pid_t pid : pids) {
    errno = 0;
    EXPECT_EQ(::kill(pid, 0), -1) << "server " << pid << " survived";
    EXPECT_EQ(errno, ESRCH);
  }
  EXPECT_FALSE(ProcessWithArgExists(dir)) << "a process of the world remains";
}

TEST_F(NetWorldTest, TwoWorldsCoexist) {
  NetWorld first;
  NetWorld second;
  EXPECT_NE(first.daemon_ns(), second.daemon_ns());
  auto got = second.InDaemon({"busybox", "wget", "-q", "-O-", "http://198.51.100.10:80/"}, 10s);
  EXPECT_EQ(got.out, NetWorld::HttpBody(80));
}

}  // namespace
}  // namespace agentvm::testing
