// netsetup's conntrack cleanup against the kernel, inside a namespace of its
// own: a departed VM's address loses its tracked connections, nobody else's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "common/unique_fd.h"
#include "netsetup/conntrack.h"
#include "tests/support/command.h"
#include "tests/support/netns.h"

namespace agentvm::net {
namespace {

using testing::NetNamespace;
using testing::RunCommand;
using testing::RunInNetns;

// One UDP datagram from `from` to `to`:9, both local: conntrack tracks it as
// one entry with that original direction.
void SendUdp(const char* from, const char* to) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd.valid());
  sockaddr_in source{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {}, .sin_zero = {}};
  ::inet_pton(AF_INET, from, &source.sin_addr);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&source), sizeof source), 0) << from;
  sockaddr_in dest{.sin_family = AF_INET, .sin_port = htons(9), .sin_addr = {}, .sin_zero = {}};
  ::inet_pton(AF_INET, to, &dest.sin_addr);
  ASSERT_EQ(::sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&dest), sizeof dest), 1) << to;
}

class NetConntrackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root";
    for (std::string step : {"link set lo up", "addr add 10.9.0.2/32 dev lo", "addr add 10.9.0.3/32 dev lo",
                             "addr add 10.9.0.4/32 dev lo"}) {
      std::vector<std::string> argv = {"ip", "-n", netns_.name()};
      for (std::size_t at = 0, next; at < step.size(); at = next + 1) {
        next = step.find(' ', at);
        if (next == std::string::npos) next = step.size();
        argv.push_back(step.substr(at, next - at));
      }
      auto result = RunCommand(argv, std::chrono::seconds(10));
      ASSERT_EQ(result.exit_code, 0) << step << ": " << result.err;
    }
    // A namespace tracks connections only once a rule asks for conntrack.
    auto nft = RunCommand({"ip", "netns", "exec", netns_.name(), "nft",
                           "add table ip t; add chain ip t out { type filter hook output priority 0; }; "
                           "add rule ip t out ct state new accept"},
                          std::chrono::seconds(10));
    ASSERT_EQ(nft.exit_code, 0) << nft.err;
  }

  NetNamespace netns_{"avmnet-ct"};
};

TEST_F(NetConntrackTest, ForgetsEveryFlowOfTheAddressAndNoOther) {
  RunInNetns(netns_.name(), [] {
    SendUdp("10.9.0.2", "10.9.0.3");  // the departed VM opened it
    SendUdp("10.9.0.4", "10.9.0.2");  // someone opened it to the departed VM
    SendUdp("10.9.0.3", "10.9.0.4");  // not the departed VM's
    const Ipv4Address departed = *Ipv4Address::Parse("10.9.0.2");

    auto forgot = ForgetConnections(departed);
    ASSERT_TRUE(forgot.has_value()) << forgot.error().ToString();
    EXPECT_EQ(*forgot, 2u);
    auto again = ForgetConnections(departed);
    ASSERT_TRUE(again.has_value()) << again.error().ToString();
    EXPECT_EQ(*again, 0u);
    // The unrelated flow is still tracked: forgetting its address finds it.
    auto other = ForgetConnections(*Ipv4Address::Parse("10.9.0.3"));
    ASSERT_TRUE(other.has_value()) << other.error().ToString();
    EXPECT_EQ(*other, 1u);
  });
}

}  // namespace
}  // namespace agentvm::net
