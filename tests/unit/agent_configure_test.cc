// "configure" through the real agentvm-guest binary on the host. The agent
// runs as root here, so it always gets --dry-run-system: it records what it
// would do to the clock, host name, network and RNG, and the tests read that
// record. Without the flag, an --fd agent must refuse to touch anything.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "guest-images/agent/testing/agent_harness.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using testing::AgentProcess;
using testing::FrameClient;

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

protocol::GuestIdentity FullIdentity() {
  protocol::GuestIdentity identity;
  identity.network =
      protocol::GuestNetwork{"10.101.0.5/16", "10.101.0.1", "10.101.0.1", "02:00:0a:65:00:05"};
  identity.hostname = "vm-7f3a";
  identity.time_unix_ns = 1893456000123456789;
  identity.entropy = std::string("\x00\x01\xab\xff", 4);
  return identity;
}

class AgentConfigureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/agentvm-configure-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    record_ = dir_ + "/actions";
  }
  void TearDown() override {
    client_.reset();
    agent_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartAgent(std::vector<std::string> args) {
    std::string error;
    agent_ = AgentProcess::Start(std::move(args), &error);
    ASSERT_NE(agent_, nullptr) << error;
    client_ = std::make_unique<FrameClient>(agent_->host_fd());
  }
  void StartRecording(const std::string& fail_prefix = "") {
    std::vector<std::string> args = {"--dry-run-system", record_};
    if (!fail_prefix.empty()) args.insert(args.end(), {"--dry-run-fail", fail_prefix});
    StartAgent(args);
  }

  protocol::Frame Configure(const protocol::Frame& frame) {
    EXPECT_TRUE(client_->Send(frame));
    auto frames = client_->Collect(frame.stream);
    EXPECT_EQ(frames.size(), 1u);
    return frames.empty() ? protocol::Frame{} : frames.back();
  }
  protocol::Frame Configure(const protocol::GuestIdentity& identity) {
    return Configure(protocol::ConfigureFrame(++stream_, identity));
  }
  protocol::ErrorReply ErrorOf(const protocol::Frame& reply) {
    EXPECT_EQ(reply.type, protocol::kTypeError);
    return protocol::ParseError(reply).value_or(protocol::ErrorReply{});
  }

  std::string dir_;
  std::string record_;
  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<FrameClient> client_;
  std::uint32_t stream_ = 0;
};

TEST_F(AgentConfigureTest, AppliesEveryPartInOrder) {
  StartRecording();
  protocol::Frame reply = Configure(FullIdentity());
  EXPECT_EQ(reply.type, protocol::kTypeOk);
  EXPECT_EQ(Lines(record_), (std::vector<std::string>{
                                "clock 1893456000123456789",
                                "entropy 4 0001abff",
                                "hostname vm-7f3a",
                                "ip link set dev eth0 down",
                                "ip link set dev eth0 address 02:00:0a:65:00:05",
                                "ip link set dev eth0 up",
                                "ip -4 addr flush dev eth0",
                                "ip addr add 10.101.0.5/16 dev eth0",
                                "ip route replace default via 10.101.0.1 dev eth0",
                                "resolv.conf nameserver 10.101.0.1\\n",
                            }));
}

TEST_F(AgentConfigureTest, OnlyWhatIsGivenIsTouched) {
  StartRecording();
  protocol::GuestIdentity hostname_only;
  hostname_only.hostname = "clone-2";
  EXPECT_EQ(Configure(hostname_only).type, protocol::kTypeOk);

  protocol::GuestIdentity address_only;
  address_only.network = protocol::GuestNetwork{"10.101.0.9/16", {}, {}, {}};
  EXPECT_EQ(Configure(address_only).type, protocol::kTypeOk);

  protocol::GuestIdentity gateway_and_dns;
  gateway_and_dns.network = protocol::GuestNetwork{{}, "10.101.0.254", "9.9.9.9", {}};
  EXPECT_EQ(Configure(gateway_and_dns).type, protocol::kTypeOk);

  protocol::GuestIdentity nothing;
  EXPECT_EQ(Configure(nothing).type, protocol::kTypeOk);

  EXPECT_EQ(Lines(record_), (std::vector<std::string>{
                                "hostname clone-2",
                                "ip link set dev eth0 up",
                                "ip -4 addr flush dev eth0",
                                "ip addr add 10.101.0.9/16 dev eth0",
                                "ip route replace default via 10.101.0.254 dev eth0",
                                "resolv.conf nameserver 9.9.9.9\\n",
                            }));
}

TEST_F(AgentConfigureTest, BadInputIsRefusedAndNothingIsApplied) {
  StartRecording();
  auto refuse = [&](protocol::GuestIdentity identity, std::string_view expected) {
    protocol::ErrorReply error = ErrorOf(Configure(identity));
    EXPECT_EQ(error.code, protocol::kCodeInvalidArgument);
    EXPECT_NE(error.message.find(expected), std::string::npos) << error.message;
  };
  // Every bad identity also carries good parts: none of them may be applied.
  protocol::GuestIdentity identity = FullIdentity();
  identity.network->address = "10.101.0.5";
  refuse(identity, "network.address \"10.101.0.5\"");

  identity = FullIdentity();
  identity.network->mac = "ff:ff:ff:ff:ff:ff";
  refuse(identity, "network.mac \"ff:ff:ff:ff:ff:ff\": a multicast address");

  identity = FullIdentity();
  identity.hostname = "../../etc/passwd";
  refuse(identity, "hostname \"../../etc/passwd\"");

  identity = FullIdentity();
  identity.hostname = std::string(65, 'h');
  refuse(identity, "longer than 64 bytes");

  identity = FullIdentity();
  identity.entropy = std::string(4097, 'e');
  refuse(identity, "entropy of 4097 bytes: more than 4096");

  identity = FullIdentity();
  identity.time_unix_ns = 1893456000;
  refuse(identity, "before 2000-01-01");

  protocol::ErrorReply typed = ErrorOf(Configure(protocol::MakeFrame(
      protocol::kTypeConfigure, ++stream_, {{"hostname", "ok"}, {"network", {{"gateway", 1}}}})));
  EXPECT_EQ(typed.message, "configure: \"network.gateway\" is not a string");

  EXPECT_FALSE(std::filesystem::exists(record_));
  // The agent keeps serving.
  EXPECT_EQ(Configure(protocol::GuestIdentity{}).type, protocol::kTypeOk);
}

TEST_F(AgentConfigureTest, AFailedStepIsNamedAndLaterStepsAreNotRun) {
  StartRecording("ip link set dev eth0 up");
  protocol::ErrorReply error = ErrorOf(Configure(FullIdentity()));
  EXPECT_EQ(error.code, protocol::kCodeInternal);
  EXPECT_EQ(error.message, "configure: network: ip link set dev eth0 up: injected failure");
  EXPECT_EQ(Lines(record_), (std::vector<std::string>{
                                "clock 1893456000123456789",
                                "entropy 4 0001abff",
                                "hostname vm-7f3a",
                                "ip link set dev eth0 down",
                                "ip link set dev eth0 address 02:00:0a:65:00:05",
                            }));
}

TEST_F(AgentConfigureTest, EachStepHasItsName) {
  for (auto [prefix, expected] : std::vector<std::pair<std::string, std::string>>{
           {"clock", "configure: clock: injected failure"},
           {"entropy", "configure: entropy: injected failure"},
           {"hostname", "configure: hostname: injected failure"},
           {"resolv.conf", "configure: dns: injected failure"}}) {
    StartRecording(prefix);
    protocol::ErrorReply error = ErrorOf(Configure(FullIdentity()));
    EXPECT_EQ(error.message, expected);
    client_.reset();
    agent_.reset();
  }
}

TEST_F(AgentConfigureTest, AnFdAgentWithoutDryRunRefusesToTouchTheMachine) {
  StartAgent({});
  protocol::ErrorReply error = ErrorOf(Configure(FullIdentity()));
  EXPECT_EQ(error.code, protocol::kCodeUnavailable);
  EXPECT_NE(error.message.find("--dry-run-system"), std::string::npos) << error.message;
  // Bad input is still reported as such.
  protocol::GuestIdentity bad;
  bad.hostname = "a/b";
  EXPECT_EQ(ErrorOf(Configure(bad)).code, protocol::kCodeInvalidArgument);
}

TEST(AgentConfigureFlagsTest, DryRunFailNeedsDryRunSystem) {
  std::string binary = testing::AgentBinaryPath();
  int status = std::system((binary + " --fd 0 --dry-run-fail ip 2>/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace agentvm::guest
