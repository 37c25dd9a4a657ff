// allow_domains through the whole daemon with a real guest: POST /v1/vms
// with a list, then what the guest can resolve and reach in the test world.
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/command.h"
#include "tests/support/daemon.h"
#include "tests/support/net_world.h"

namespace agentvm::testing {
namespace {

using nlohmann::json;

TEST(NetworkDomainsVmTest, AGuestResolvesAndReachesOnlyItsListedNames) {
  ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
  NetWorld world;
  Daemon daemon({.netns = world.daemon_ns(), .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress)}});
  auto [status, text] = daemon.Http("POST", "/v1/vms", R"({"network": {"allow_domains": ["WEB.test."]}})");
  ASSERT_EQ(status, 201) << text << daemon.Log();
  const json vm = json::parse(text);
  const std::string id = vm["id"];
  EXPECT_EQ(vm["network"]["allow_domains"], json::array({"web.test"}));
  auto guest = [&](const std::string& script) { return daemon.Cli({"exec", id, "--", "sh", "-c", script}); };
  const std::string url = "http://" + std::string(NetWorld::kWebAddress) + ":80/";

  auto by_ip = guest("timeout 5 wget -q -O- " + url);
  EXPECT_NE(by_ip.exit_code, 0) << "nothing learned yet: " << by_ip.out;

  auto allowed = guest("nslookup web.test");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out << allowed.err;
  EXPECT_NE(allowed.out.find(NetWorld::kWebAddress), std::string::npos) << allowed.out;
  auto fetched = guest("timeout 5 wget -q -O- " + url);
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out, NetWorld::HttpBody(80));

  auto refused = guest("nslookup secret-data.exfil.test");
  EXPECT_EQ(refused.out.find("Address: 1"), std::string::npos) << refused.out;
  EXPECT_EQ(world.DnsLog(NetWorld::kDnsAddress).find("exfil"), std::string::npos)
      << "a refused name must never reach upstream";
  EXPECT_NE(world.DnsLog(NetWorld::kDnsAddress).find("web.test"), std::string::npos);
  EXPECT_EQ(daemon.Cli({"rm", "-f", id}).exit_code, 0) << daemon.Log();
}

}  // namespace
}  // namespace agentvm::testing
