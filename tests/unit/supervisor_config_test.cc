#include "supervisor/config.h"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

std::string ConfigPath() { return ::testing::TempDir() + "/agentvmd-config-test.yaml"; }

std::string WriteConfig(const std::string& text) {
  std::ofstream(ConfigPath()) << text;
  return ConfigPath();
}

class ConfigTest : public ::testing::Test {
 protected:
  void TearDown() override { std::remove(ConfigPath().c_str()); }
};

TEST_F(ConfigTest, FileOverridesDefaults) {
  DaemonConfig config;
  auto applied = ApplyConfigFile(WriteConfig("socket: /run/x/api.sock\naccel: tcg\nagent_timeout_sec: 30\n"
                                             "default_memory_mib: 512\n"),
                                 config);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(config.socket_path, "/run/x/api.sock");
  EXPECT_EQ(config.accel, "tcg");
  EXPECT_EQ(config.agent_timeout, std::chrono::seconds(30));
  EXPECT_EQ(config.default_memory_mib, 512);
  EXPECT_EQ(config.state_dir, "/var/lib/agentvm");  // untouched default
  EXPECT_TRUE(ValidateConfig(config));
}

TEST_F(ConfigTest, TyposAndWrongTypesAreErrors) {
  DaemonConfig config;
  auto typo = ApplyConfigFile(WriteConfig("acel: tcg\n"), config);
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("unknown key 'acel'"), std::string::npos);

  auto wrong_type = ApplyConfigFile(WriteConfig("agent_timeout_sec: soon\n"), config);
  ASSERT_FALSE(wrong_type);
  EXPECT_NE(wrong_type.error().message.find("agent_timeout_sec"), std::string::npos);

  EXPECT_FALSE(ApplyConfigFile(WriteConfig("[not, a, map]\n"), config));
  EXPECT_EQ(ApplyConfigFile("/nonexistent/agentvmd.yaml", config).error().code, ErrorCode::kNotFound);
}

TEST_F(ConfigTest, ValidationCatchesWhatWouldFailLater) {
  DaemonConfig relative;
  relative.state_dir = "var/lib/agentvm";
  EXPECT_FALSE(ValidateConfig(relative));

  DaemonConfig long_run_dir;
  long_run_dir.run_dir = "/" + std::string(100, 'r');
  auto refused = ValidateConfig(long_run_dir);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("too long"), std::string::npos);

  DaemonConfig bad_accel;
  bad_accel.accel = "fast";
  EXPECT_FALSE(ValidateConfig(bad_accel));
}

TEST_F(ConfigTest, NetworkKeys) {
  DaemonConfig config;
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("default_network: isolated\nbridge: avmbr1\nsubnet: 10.200.0.0/24\n"
                                          "dns_upstream: 192.0.2.53:5353\nallowed_tcp_ports: [443, 8443]\n"),
                              config));
  EXPECT_EQ(config.default_network, "isolated");
  EXPECT_EQ(config.bridge, "avmbr1");
  EXPECT_EQ(config.subnet, "10.200.0.0/24");
  EXPECT_EQ(config.dns_upstream, "192.0.2.53:5353");
  EXPECT_EQ(config.allowed_tcp_ports, (std::vector<std::uint16_t>{443, 8443}));
  EXPECT_TRUE(ValidateConfig(config));

  EXPECT_FALSE(ApplyConfigFile(WriteConfig("allowed_tcp_ports: [0]\n"), config));
  EXPECT_FALSE(ApplyConfigFile(WriteConfig("allowed_tcp_ports: 443\n"), config));
}

TEST_F(ConfigTest, NetworkValidation) {
  auto refused = [](auto edit) {
    DaemonConfig config;
    edit(config);
    auto result = ValidateConfig(config);
    return result ? std::string() : result.error().message;
  };
  EXPECT_EQ(refused([](DaemonConfig&) {}), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.default_network = "bridge"; }), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.default_network = "open"; }), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.bridge = "a/b"; }), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.subnet = "10.101.0.1/16"; }).find("10.101.0.0/16"), std::string::npos);
  EXPECT_NE(refused([](DaemonConfig& c) { c.subnet = "10.0.0.0/31"; }), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.dns_upstream = "resolver"; }), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.allowed_tcp_ports = {53}; }).find("DNS"), std::string::npos);
}

}  // namespace
}  // namespace agentvm
