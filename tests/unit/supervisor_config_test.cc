#include "supervisor/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

// One file per process: ctest runs each test in its own process, in parallel.
std::string ConfigPath() {
  return ::testing::TempDir() + "/agentvmd-config-test-" + std::to_string(::getpid()) + ".yaml";
}

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

TEST_F(ConfigTest, MetricsListenIsAnIpAndPort) {
  DaemonConfig config;
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("metrics_listen: 127.0.0.1:9464\n"), config));
  EXPECT_EQ(config.metrics_listen, "127.0.0.1:9464");
  EXPECT_TRUE(ValidateConfig(config));
  auto v4 = ParseMetricsListen("0.0.0.0:9464");
  ASSERT_TRUE(v4) << v4.error().message;
  EXPECT_EQ(v4->host, "0.0.0.0");
  EXPECT_EQ(v4->port, 9464);
  auto v6 = ParseMetricsListen("[::1]:9100");
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9100);
  for (const char* bad : {"9464", ":9464", "localhost:9464", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:",
                          "::1:9464", "127.0.0.1:94x", "[::1]"}) {
    auto parsed = ParseMetricsListen(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_NE(parsed.error().message.find("metrics_listen must be ADDRESS:PORT"), std::string::npos);
    config.metrics_listen = bad;
    EXPECT_FALSE(ValidateConfig(config)) << bad;
  }
}

TEST_F(ConfigTest, MountOwnerIsUidColonGidOrEmptyForTheCaller) {
  DaemonConfig config;
  EXPECT_FALSE(config.mount_owner);
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("mount_owner: \"1000:1001\"\n"), config));
  EXPECT_EQ(config.mount_owner, (UserIds{.uid = 1000, .gid = 1001}));
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("mount_owner: \"\"\n"), config));
  EXPECT_FALSE(config.mount_owner);
  auto bad = ApplyConfigFile(WriteConfig("mount_owner: alice\n"), config);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("mount_owner"), std::string::npos) << bad.error().message;
}

TEST_F(ConfigTest, VirtiofsCacheIsAutoAlwaysOrNone) {
  DaemonConfig config;
  EXPECT_EQ(config.virtiofs_cache, "auto");
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("virtiofs_cache: always\n"), config));
  EXPECT_TRUE(ValidateConfig(config));
  config.virtiofs_cache = "metadata";
  auto bad = ValidateConfig(config);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("virtiofs_cache must be auto, always or none"), std::string::npos);
}

TEST_F(ConfigTest, ConsoleCapsAreKeysWithinBounds) {
  DaemonConfig config;
  EXPECT_EQ(config.console_memory_kib, 128);
  EXPECT_EQ(config.console_file_kib, 1024);
  auto applied = ApplyConfigFile(WriteConfig("console_memory_kib: 8\nconsole_file_kib: 64\n"), config);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(config.console_memory_kib, 8);
  EXPECT_EQ(config.console_file_kib, 64);
  EXPECT_TRUE(ValidateConfig(config));

  for (auto [memory, file] : {std::pair{0, 1024}, {128, 0}, {1 << 20, 1024}, {128, 1 << 20}}) {
    DaemonConfig bad;
    bad.console_memory_kib = memory;
    bad.console_file_kib = file;
    auto refused = ValidateConfig(bad);
    ASSERT_FALSE(refused) << memory << " " << file;
    EXPECT_NE(refused.error().message.find("console_memory_kib"), std::string::npos);
  }
}

TEST_F(ConfigTest, NetworkKeys) {
  DaemonConfig config;
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("default_network: isolated\nbridge: avmbr1\nsubnet: 10.200.0.0/24\n"
                                          "dns_upstream: 192.0.2.53:5353\nallowed_tcp_ports: [443, 8443]\n"
                                          "max_connections_per_vm: 200\negress_log_group: 12\n"),
                              config));
  EXPECT_EQ(config.max_connections_per_vm, 200);
  EXPECT_EQ(config.egress_log_group, 12);
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
  EXPECT_NE(refused([](DaemonConfig& c) { c.max_connections_per_vm = 0; }).find("max_connections_per_vm"),
            std::string::npos);
  EXPECT_NE(refused([](DaemonConfig& c) { c.max_connections_per_vm = 2'000'000; }), "");
  EXPECT_NE(refused([](DaemonConfig& c) { c.egress_log_group = 65536; }).find("egress_log_group"), std::string::npos);
}

TEST_F(ConfigTest, SnapshotAndPoolKeys) {
  DaemonConfig config;
  auto applied = ApplyConfigFile(WriteConfig(R"(golden_snapshots: false
health_check_interval_sec: 5
pools:
  - image: tiny
    cpus: 2
    memory_mib: 512
    network: isolated
    min_ready: 3
    max_total: 6
    ttl_sec: 600
    fill_parallelism: 3
  - {image: other}
)"),
                                 config);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_FALSE(config.golden_snapshots);
  EXPECT_EQ(config.health_check_interval, std::chrono::seconds(5));
  ASSERT_EQ(config.pools.size(), 2u);
  const PoolConfig& pool = config.pools[0];
  EXPECT_EQ(pool.image, "tiny");
  EXPECT_EQ(pool.cpus, 2);
  EXPECT_EQ(pool.memory_mib, 512);
  EXPECT_EQ(pool.network, "isolated");
  EXPECT_EQ(pool.min_ready, 3);
  EXPECT_EQ(pool.max_total, 6);
  EXPECT_EQ(pool.ttl, std::chrono::seconds(600));
  EXPECT_EQ(pool.fill_parallelism, 3);
  // Keys a pool leaves out take PoolConfig's defaults.
  const PoolConfig defaults;
  EXPECT_EQ(config.pools[1].image, "other");
  EXPECT_EQ(config.pools[1].cpus, defaults.cpus);
  EXPECT_EQ(config.pools[1].memory_mib, defaults.memory_mib);
  EXPECT_EQ(config.pools[1].network, defaults.network);
  EXPECT_EQ(config.pools[1].min_ready, defaults.min_ready);
  EXPECT_EQ(config.pools[1].max_total, defaults.max_total);
  EXPECT_EQ(config.pools[1].ttl, defaults.ttl);
  EXPECT_EQ(config.pools[1].fill_parallelism, 0);  // by cores
  EXPECT_TRUE(ValidateConfig(config));

  DaemonConfig fresh;
  EXPECT_TRUE(fresh.golden_snapshots);
  EXPECT_TRUE(fresh.pools.empty());
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("golden_snapshots: true\npools: []\n"), fresh));
  EXPECT_TRUE(fresh.golden_snapshots);
  EXPECT_TRUE(fresh.pools.empty());
  fresh.pools.resize(1);
  ASSERT_TRUE(ApplyConfigFile(WriteConfig("pools:\n"), fresh));
  EXPECT_TRUE(fresh.pools.empty()) << "an empty pools: key means none";
}

TEST_F(ConfigTest, PoolKeyTyposAndWrongTypesAreErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {"pools:\n  - image: tiny\n    min_redy: 2\n", "unknown key 'pools[0].min_redy'"},
      {"pools:\n  - {image: tiny}\n  - {cpu: 2}\n", "unknown key 'pools[1].cpu'"},
      {"pools:\n  - {cpus: two}\n", "pools[0].cpus"},
      {"pools:\n  - {max_total: 1.5}\n", "pools[0].max_total"},
      {"pools:\n  - {image: [a, b]}\n", "pools[0].image"},
      {"pools:\n  - tiny\n", "'pools[0]' must be a mapping"},
      {"pools: tiny\n", "'pools' must be a list"},
      {"pools: {image: tiny}\n", "'pools' must be a list"},
      {"golden_snapshots: maybe\n", "golden_snapshots"},
      {"health_check_interval_sec: often\n", "health_check_interval_sec"},
      {"golden_snapshot: false\n", "unknown key 'golden_snapshot'"},
  };
  for (const auto& [text, expected] : cases) {
    DaemonConfig config;
    auto result = ApplyConfigFile(WriteConfig(text), config);
    ASSERT_FALSE(result) << text;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << text << " -> " << result.error().message;
  }
}

TEST_F(ConfigTest, PoolValidation) {
  auto refused = [](auto edit) {
    DaemonConfig config;
    config.pools.emplace_back();
    edit(config);
    auto result = ValidateConfig(config);
    return result ? std::string() : result.error().message;
  };
  auto pool = [](DaemonConfig& c) -> PoolConfig& { return c.pools.front(); };
  EXPECT_EQ(refused([](DaemonConfig&) {}), "");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).network = "isolated"; }), "");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).min_ready = 0; }), "");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).min_ready = pool(c).max_total = 64; }), "");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).cpus = 64; pool(c).memory_mib = 65536; }), "");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).ttl = std::chrono::seconds(1); }), "");

  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).network = "bridge"; }),
            "pools[0]: network must be nat-filtered or isolated, not 'bridge'");
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).network = "open"; }).find("network"), std::string::npos);
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).min_ready = 5; }),
            "pools[0]: min_ready must be between 0 and max_total (4), not 5");
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).min_ready = -1; }).find("min_ready"), std::string::npos);
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).max_total = 0; pool(c).min_ready = 0; }),
            "pools[0]: max_total must be between 1 and 64, not 0");
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).max_total = 65; }).find("max_total"), std::string::npos);
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).cpus = 0; }).find("cpus must be between 1 and 64"),
            std::string::npos);
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).cpus = 65; }).find("cpus"), std::string::npos);
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).memory_mib = 32; }).find("memory_mib must be between 64 and 65536"),
            std::string::npos);
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).memory_mib = 65537; }).find("memory_mib"), std::string::npos);
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).ttl = std::chrono::seconds(0); }),
            "pools[0]: ttl_sec must be >= 1");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).fill_parallelism = 16; }), "");
  EXPECT_EQ(refused([&](DaemonConfig& c) { pool(c).fill_parallelism = 17; }),
            "pools[0]: fill_parallelism must be between 0 (by cores) and 16, not 17");
  EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).fill_parallelism = -1; }).find("fill_parallelism"),
            std::string::npos);
  for (std::string image : {std::string(), std::string(".."), std::string("../etc"), std::string("Tiny"),
                            std::string("a/b"), std::string("-x"), std::string(65, 'a')}) {
    EXPECT_NE(refused([&](DaemonConfig& c) { pool(c).image = image; }).find("pools[0]: invalid image name"),
              std::string::npos)
        << image;
  }
  EXPECT_EQ(refused([](DaemonConfig& c) { c.health_check_interval = std::chrono::seconds(0); }),
            "health_check_interval_sec must be >= 1");

  // Two pools a create could not tell apart.
  EXPECT_EQ(refused([](DaemonConfig& c) {
              c.pools.emplace_back();
              c.pools.back().min_ready = 0;  // same profile, other sizes
            }),
            "pools[1] has the same image, cpus, memory_mib and network as pools[0]: a create could not "
            "tell them apart");
  EXPECT_EQ(refused([](DaemonConfig& c) {
              c.pools.emplace_back().network = "isolated";
              c.pools.emplace_back().cpus = 2;
              c.pools.emplace_back().memory_mib = 512;
              c.pools.emplace_back().image = "other";
            }),
            "");
}

TEST(PoolSpecTest, AnySubsetOverTheDefaults) {
  auto full = ParsePoolSpec("image=tiny2,cpus=2,memory_mib=512,network=isolated,min_ready=3,max_total=6,ttl_sec=600");
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->image, "tiny2");
  EXPECT_EQ(full->cpus, 2);
  EXPECT_EQ(full->memory_mib, 512);
  EXPECT_EQ(full->network, "isolated");
  EXPECT_EQ(full->min_ready, 3);
  EXPECT_EQ(full->max_total, 6);
  EXPECT_EQ(full->ttl, std::chrono::seconds(600));

  const PoolConfig defaults;
  auto some = ParsePoolSpec("min_ready=2");
  ASSERT_TRUE(some);
  EXPECT_EQ(some->min_ready, 2);
  EXPECT_EQ(some->image, defaults.image);
  EXPECT_EQ(some->max_total, defaults.max_total);
  EXPECT_EQ(some->network, defaults.network);
  EXPECT_EQ(some->ttl, defaults.ttl);

  auto none = ParsePoolSpec("");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->image, defaults.image);
  EXPECT_EQ(none->min_ready, defaults.min_ready);

  // Syntax only: the values are ValidateConfig's to judge.
  auto odd = ParsePoolSpec("network=bridge,cpus=-1");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->cpus, -1);
}

TEST(PoolSpecTest, Refusals) {
  const std::pair<std::string, std::string> cases[] = {
      {"size=3", "unknown key 'size'"},
      {"image", "'image' is not key=value"},
      {"cpus=1,cpus=2", "'cpus' is given twice"},
      {"cpus=two", "cpus expects a whole number, not 'two'"},
      {"cpus=1.5", "cpus expects a whole number"},
      {"min_ready=", "min_ready expects a whole number"},
      {"ttl_sec=1h", "ttl_sec expects a whole number"},
      {"cpus=99999999999", "cpus expects a whole number"},
      {"image=tiny,", "empty item"},
      {",image=tiny", "empty item"},
      {"image=tiny,,cpus=1", "empty item"},
  };
  for (const auto& [spec, expected] : cases) {
    auto result = ParsePoolSpec(spec);
    ASSERT_FALSE(result) << spec;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << spec << " -> " << result.error().message;
  }
}

// The default file the package installs as /etc/agentvm/agentvmd.yaml shows
// every setting commented out. With them all uncommented it must still be a
// valid config that says the defaults, so the file stays true to the code.
TEST_F(ConfigTest, TheInstalledDefaultFileUncommentedIsTheDefaults) {
  std::ifstream in(std::string(AGENTVM_TESTDATA_DIR) + "/../../../packaging/agentvmd.yaml");
  ASSERT_TRUE(in) << "packaging/agentvmd.yaml";
  std::string uncommented;
  int settings = 0;
  for (std::string line; std::getline(in, line);) {
    // "#key: value" and "#  nested: value" are settings; "# text" is prose.
    const bool setting = line.size() > 1 && line[0] == '#' &&
                         (line[1] != ' ' || line.compare(1, 2, "  ") == 0) && line[1] != '#';
    if (setting) {
      uncommented += line.substr(1) + "\n";
      ++settings;
    }
  }
  EXPECT_GT(settings, 40);
  DaemonConfig config;
  auto applied = ApplyConfigFile(WriteConfig(uncommented), config);
  ASSERT_TRUE(applied) << applied.error().message;
  ASSERT_TRUE(ValidateConfig(config));
  const DaemonConfig defaults;
  EXPECT_EQ(config.socket_path, defaults.socket_path);
  EXPECT_EQ(config.state_dir, defaults.state_dir);
  EXPECT_EQ(config.subnet, defaults.subnet);
  EXPECT_EQ(config.allowed_tcp_ports, defaults.allowed_tcp_ports);
  EXPECT_EQ(config.agent_timeout, defaults.agent_timeout);
  EXPECT_EQ(config.jail.uid_base, defaults.jail.uid_base);
  EXPECT_EQ(config.jail.slots, defaults.jail.slots);
  ASSERT_EQ(config.pools.size(), 1u);  // the example
  EXPECT_EQ(config.pools[0].max_total, PoolConfig{}.max_total);
  ASSERT_EQ(config.egress_presets.size(), 1u);  // the example
  EXPECT_EQ(config.egress_presets.at("internal").size(), 2u);
}

TEST_F(ConfigTest, EgressPresetsAreReadAndCheckedAtLoad) {
  DaemonConfig config;
  auto applied = ApplyConfigFile(WriteConfig("egress_presets:\n  corp: [Git.Corp.Example, \"*.cdn.corp.example\"]\n"
                                             "  docs: [docs.corp.example]\n"),
                                 config);
  ASSERT_TRUE(applied) << applied.error().message;
  ASSERT_TRUE(ValidateConfig(config));
  EXPECT_EQ(config.egress_presets.at("corp"), (std::vector<std::string>{"Git.Corp.Example", "*.cdn.corp.example"}));
  EXPECT_EQ(config.egress_presets.at("docs"), std::vector<std::string>{"docs.corp.example"});

  auto error_of = [&](const std::string& text) {
    DaemonConfig fresh;
    auto read = ApplyConfigFile(WriteConfig(text), fresh);
    if (!read) return read.error().message;
    auto valid = ValidateConfig(fresh);
    return valid ? std::string("accepted") : valid.error().message;
  };
  EXPECT_NE(error_of("egress_presets: [a.test]\n").find("must map preset names to lists"), std::string::npos);
  EXPECT_NE(error_of("egress_presets:\n  corp: a.test\n").find("'egress_presets.corp' must be a list"),
            std::string::npos);
  EXPECT_NE(error_of("egress_presets:\n  corp: [{a: b}]\n").find("egress_presets.corp"), std::string::npos);
  EXPECT_NE(error_of("egress_presets:\n  Corp_1: [a.test]\n").find("is not a preset name"), std::string::npos);
  EXPECT_NE(error_of("egress_presets:\n  github: [git.corp.example]\n").find("has the name of a built-in preset"),
            std::string::npos);
  EXPECT_NE(error_of("egress_presets:\n  corp: [\"*.com\"]\n").find("egress_presets.corp"), std::string::npos);
  EXPECT_NE(error_of("egress_presets:\n  corp: []\n").find("lists no names"), std::string::npos);
  EXPECT_EQ(error_of("egress_presets:\n"), "accepted");
}

}  // namespace
}  // namespace agentvm
