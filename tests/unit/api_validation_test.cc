#include "supervisor/api/request_validation.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace agentvm::api {
namespace {

using namespace std::string_literals;

TEST(ApiValidationTest, GuestPaths) {
  for (std::string path : {"/", "/tmp/x", "/a/b.c/..d", "/with space", "/x/./y"}) {
    EXPECT_TRUE(ValidateGuestPath(path, "path")) << path;
  }
  for (std::string path : {""s, "relative"s, "./x"s, "/../etc/passwd"s, "/a/.."s, "/a/../b"s,
                           "/a\0b"s, "/"s + std::string(4096, 'a')}) {
    auto result = ValidateGuestPath(path, "path");
    ASSERT_FALSE(result) << path.substr(0, 40);
    EXPECT_NE(result.error().message.find("path"), std::string::npos);
  }
}

TEST(ApiValidationTest, CreateBodyDefaultsAndFields) {
  auto defaults = ParseCreateVmBody("");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->image, "tiny");
  EXPECT_EQ(defaults->cpus, 1);
  EXPECT_EQ(defaults->memory_mib, 256);

  auto full = ParseCreateVmBody(R"({"image":"other","cpus":4,"memory_mib":1024})");
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->image, "other");
  EXPECT_EQ(full->cpus, 4);
  EXPECT_EQ(full->memory_mib, 1024);
}

TEST(ApiValidationTest, CreateBodyRefusals) {
  const std::pair<std::string, std::string> cases[] = {
      {"{", "malformed JSON"},
      {"[]", "JSON object"},
      {"null", "JSON object"},
      {R"({"image":"tiny","extra":1})", "unknown field \"extra\""},
      {R"({"image":5})", "image must be a string"},
      {R"({"image":"../etc"})", "invalid image name"},
      {R"({"cpus":"2"})", "cpus must be an integer"},
      {R"({"cpus":1.5})", "cpus must be an integer"},
      {R"({"cpus":true})", "cpus must be an integer"},
      {R"({"cpus":0})", "between 1 and 64"},
      {R"({"cpus":65})", "between 1 and 64"},
      {R"({"cpus":18446744073709551615})", "between 1 and 64"},
      {R"({"memory_mib":32})", "between 64 and 65536"},
      {R"({"memory_mib":-1})", "between 64 and 65536"},
      {std::string(100000, '['), "nested deeper"},
      {"{\"image\":\"\xff\"}", "malformed JSON"},
  };
  for (const auto& [body, expected] : cases) {
    auto result = ParseCreateVmBody(body);
    ASSERT_FALSE(result) << body.substr(0, 40);
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << body.substr(0, 40) << " -> " << result.error().message;
  }
}

TEST(ApiValidationTest, CreateBodyNetwork) {
  auto none = ParseCreateVmBody(R"({"image":"tiny"})");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->network.mode) << "no network object: the daemon's default";
  EXPECT_TRUE(none->network.allow_tcp_ports.empty());

  auto full = ParseCreateVmBody(R"({"network":{"mode":"nat-filtered","allow_tcp_ports":[8080,5432],
      "allow_cidrs":["203.0.113.0/24","198.51.100.7/32"],"bandwidth_bytes_per_sec":1000000}})");
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->network.mode, NetworkMode::kNatFiltered);
  EXPECT_EQ(full->network.allow_tcp_ports, (std::vector<std::uint16_t>{8080, 5432}));
  EXPECT_EQ(full->network.allow_cidrs,
            (std::vector<std::string>{"203.0.113.0/24", "198.51.100.7/32"}));
  EXPECT_EQ(full->network.bandwidth_bytes_per_sec, 1000000u);

  auto isolated = ParseCreateVmBody(R"({"network":{"mode":"isolated"}})");
  ASSERT_TRUE(isolated);
  EXPECT_EQ(isolated->network.mode, NetworkMode::kIsolated);

  auto bridge = ParseCreateVmBody(
      R"({"network":{"mode":"bridge","bridge":"br-lab"}})");
  ASSERT_TRUE(bridge) << bridge.error().message;
  EXPECT_EQ(bridge->network.mode, NetworkMode::kBridge);
  EXPECT_EQ(bridge->network.bridge, "br-lab");

  // Without a mode, the whitelist may still be given: the daemon's default
  // decides (and the supervisor re-checks once it has applied it).
  auto default_mode = ParseCreateVmBody(R"({"network":{"allow_tcp_ports":[8080]}})");
  ASSERT_TRUE(default_mode);
  EXPECT_FALSE(default_mode->network.mode);
  EXPECT_TRUE(ParseCreateVmBody(R"({"network":{}})"));
  // Limits are inclusive.
  EXPECT_TRUE(ParseCreateVmBody(R"({"network":{"allow_tcp_ports":[1,65535],
      "allow_cidrs":["10.0.0.0/8","128.0.0.0/1","11.0.0.0/32"],"bandwidth_bytes_per_sec":100000000000}})"));
  EXPECT_TRUE(ParseCreateVmBody(R"({"network":{"bandwidth_bytes_per_sec":4096}})"));
  // CIDRs come back canonical ("/08" is "/8").
  auto canonical = ParseCreateVmBody(R"({"network":{"allow_cidrs":["10.0.0.0/08"]}})");
  ASSERT_TRUE(canonical) << canonical.error().message;
  EXPECT_EQ(canonical->network.allow_cidrs, (std::vector<std::string>{"10.0.0.0/8"}));
}

std::string Ports(int count, int first = 1000) {
  std::string list;
  for (int i = 0; i < count; ++i) list += (i ? "," : "") + std::to_string(first + i);
  return list;
}

std::string Cidrs(int count) {
  std::string list;
  for (int i = 0; i < count; ++i) {
    list += (i ? ",\"10." : "\"10.") + std::to_string(i / 256) + "." + std::to_string(i % 256) +
            ".0/24\"";
  }
  return list;
}

TEST(ApiValidationTest, CreateBodyNetworkRefusals) {
  const std::pair<std::string, std::string> cases[] = {
      // The object and its fields.
      {R"({"network":"isolated"})", "network must be an object"},
      {R"({"network":null})", "network must be an object"},
      {R"({"network":[]})", "network must be an object"},
      {R"({"network":{"mode":"nat"}})", "network.mode must be one of"},
      {R"({"network":{"mode":"NAT-FILTERED"}})", "got \"NAT-FILTERED\""},
      {R"({"network":{"mode":1}})", "network.mode must be one of \"nat-filtered\", \"isolated\", \"bridge\"; got 1"},
      {R"({"network":{"mode":{"a":1}}})", "got an object"},
      {R"({"network":{"allow_ports":[80]}})", "unknown field \"network.allow_ports\""},
      {R"({"network":{"mode":"isolated","x":{"y":[1,{"z":null}]}}})", "unknown field \"network.x\""},
      // Ports.
      {R"({"network":{"allow_tcp_ports":8080}})", "network.allow_tcp_ports must be an array"},
      {R"({"network":{"allow_tcp_ports":[0]}})", "allow_tcp_ports[0] must be an integer between 1 and 65535; got 0"},
      {R"({"network":{"allow_tcp_ports":[80,65536]}})", "allow_tcp_ports[1] must be an integer between 1 and 65535; got 65536"},
      {R"({"network":{"allow_tcp_ports":[-80]}})", "got -80"},
      {R"({"network":{"allow_tcp_ports":[80.5]}})", "got 80.5"},
      {R"({"network":{"allow_tcp_ports":[8e1]}})", "allow_tcp_ports[0] must be an integer"},
      {R"({"network":{"allow_tcp_ports":["80"]}})", "got \"80\""},
      {R"({"network":{"allow_tcp_ports":[true]}})", "got true"},
      {R"({"network":{"allow_tcp_ports":[null]}})", "got null"},
      {R"({"network":{"allow_tcp_ports":[[80]]}})", "got an array"},
      {R"({"network":{"allow_tcp_ports":[18446744073709551615]}})", "between 1 and 65535"},
      {R"({"network":{"allow_tcp_ports":[99999999999999999999999]}})", "between 1 and 65535"},
      {R"({"network":{"allow_tcp_ports":[53]}})", "port 53 is refused: DNS goes only to the daemon's resolver"},
      {R"({"network":{"allow_tcp_ports":[8080,443,8080]}})", "network.allow_tcp_ports: port 8080 is listed twice"},
      {R"({"network":{"allow_tcp_ports":[)" + Ports(65) + "]}}", "lists 65 entries; at most 64"},
      {R"({"network":{"allow_tcp_ports":[)" + Ports(200000) + "]}}", "lists 200000 entries; at most 64"},
      // CIDRs.
      {R"({"network":{"allow_cidrs":"10.0.0.0/8"}})", "network.allow_cidrs must be an array"},
      {R"({"network":{"allow_cidrs":[10]}})", "network.allow_cidrs[0] must be a string; got 10"},
      {R"({"network":{"allow_cidrs":["10.0.0.1/8"]}})", "network.allow_cidrs[0]: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)"},
      {R"({"network":{"allow_cidrs":["10.0.0.0"]}})", "not a subnet (want a.b.c.d/len)"},
      {R"({"network":{"allow_cidrs":["10.0.0.0/33"]}})", "bad prefix length"},
      {R"({"network":{"allow_cidrs":["256.0.0.0/8"]}})", "not an IPv4 address"},
      {R"({"network":{"allow_cidrs":["2001:db8::/32"]}})", "is not an IPv4 subnet"},
      {R"({"network":{"allow_cidrs":["example.com/24"]}})", "is not an IPv4 subnet"},
      {R"({"network":{"allow_cidrs":["10.0.0.0/8\n"]}})", "\"10.0.0.0/8\\x0a\" is not an IPv4 subnet"},
      {R"({"network":{"allow_cidrs":["10.0.0.0/8\u0000"]}})", "\\x00"},
      {R"({"network":{"allow_cidrs":[")" + std::string(100000, '1') + "\"]}}", "(100000 bytes)"},
      {R"({"network":{"allow_cidrs":["10.0.0.0/8","10.0.0.0/08"]}})", "network.allow_cidrs: 10.0.0.0/8 is listed twice"},
      {R"({"network":{"allow_cidrs":["192.0.2.0/24","10.0.0.0/8","10.1.0.0/16"]}})", "network.allow_cidrs: 10.0.0.0/8 and 10.1.0.0/16 overlap"},
      {R"({"network":{"allow_cidrs":["0.0.0.0/0"]}})", "0.0.0.0/0 would open every address"},
      {R"({"network":{"allow_cidrs":[)" + Cidrs(65) + "]}}", "lists 65 entries; at most 64"},
      // Bridge.
      {R"({"network":{"mode":"bridge"}})", "network.bridge is required when network.mode is bridge"},
      {R"({"network":{"mode":"bridge","bridge":""}})", "invalid network.bridge \"\""},
      {R"({"network":{"mode":"bridge","bridge":"a-name-too-long!"}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"br/0"}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"br:0"}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"br 0"}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"br\t0"}})", "\"br\\x090\""},
      {R"({"network":{"mode":"bridge","bridge":".."}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"."}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"br%d"}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":"br\u00e9"}})", "invalid network.bridge"},
      {R"({"network":{"mode":"bridge","bridge":7}})", "network.bridge must be a string"},
      {R"({"network":{"bridge":"br-lab"}})", "network.bridge is only allowed when network.mode is bridge"},
      {R"({"network":{"mode":"nat-filtered","bridge":"br-lab"}})", "network.bridge is only allowed"},
      // Whitelists only with nat-filtered.
      {R"({"network":{"mode":"isolated","allow_tcp_ports":[8080]}})", "network.allow_tcp_ports is refused when network.mode is isolated: only nat-filtered has a whitelist"},
      {R"({"network":{"mode":"bridge","bridge":"br0","allow_cidrs":["10.0.0.0/8"]}})", "network.allow_cidrs is refused when network.mode is bridge: only nat-filtered has a whitelist"},
      // Bandwidth.
      {R"({"network":{"bandwidth_bytes_per_sec":4095}})", "network.bandwidth_bytes_per_sec must be between 4096 and 100000000000 bytes per second, not 4095"},
      {R"({"network":{"bandwidth_bytes_per_sec":0}})", "must be between 4096"},
      {R"({"network":{"bandwidth_bytes_per_sec":100000000001}})", "must be between 4096"},
      {R"({"network":{"bandwidth_bytes_per_sec":18446744073709551615}})", "must be between 4096"},
      {R"({"network":{"bandwidth_bytes_per_sec":-1000000}})", "must be an integer between 4096 and 100000000000 (bytes per second); got -1000000"},
      {R"({"network":{"bandwidth_bytes_per_sec":1e6}})", "got 1000000.0"},
      {R"({"network":{"bandwidth_bytes_per_sec":"1M"}})", "got \"1M\""},
      {R"({"network":{"bandwidth_bytes_per_sec":null}})", "got null"},
      {R"({"network":{"mode":"isolated","bandwidth_bytes_per_sec":1000000}})", "network.bandwidth_bytes_per_sec is refused when network.mode is isolated"},
      {R"({"network":{"mode":"bridge","bridge":"br0","bandwidth_bytes_per_sec":1000000}})", "network.bandwidth_bytes_per_sec is refused when network.mode is bridge: only nat-filtered limits bandwidth"},
  };
  for (const auto& [body, expected] : cases) {
    auto result = ParseCreateVmBody(body);
    ASSERT_FALSE(result) << body.substr(0, 80);
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << body.substr(0, 80) << " -> " << result.error().message;
    EXPECT_LT(result.error().message.size(), 300u) << body.substr(0, 80);
    for (char c : result.error().message) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in: " << result.error().message;
    }
  }
}

TEST(ApiValidationTest, NetworkRequestChecksNameTheCallersFields) {
  // The CLI names its flags; the rules are the same.
  NetworkFieldNames flags{.mode = "--net",
                          .allow_tcp_ports = "--allow-port",
                          .allow_cidrs = "--allow-cidr",
                          .bridge = "--bridge",
                          .bandwidth = "--bandwidth"};
  NetworkRequest request;
  request.mode = NetworkMode::kIsolated;
  request.allow_tcp_ports = {8080};
  auto refused = ValidateNetworkRequest(request, flags);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "--allow-port is refused when --net is isolated: only nat-filtered has a whitelist");

  NetworkRequest ports;
  for (int port = 1; port <= 65; ++port) ports.allow_tcp_ports.push_back(static_cast<std::uint16_t>(port + 100));
  EXPECT_FALSE(ValidateNetworkRequest(ports));
  ports.allow_tcp_ports.pop_back();
  EXPECT_TRUE(ValidateNetworkRequest(ports));
  ports.allow_tcp_ports.push_back(0);
  EXPECT_FALSE(ValidateNetworkRequest(ports));

  NetworkRequest cidr;
  cidr.allow_cidrs = {"10.0.0.1/8"};
  EXPECT_EQ(ValidateNetworkRequest(cidr, flags).error().message,
            "--allow-cidr: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)");

  // With the mode filled in (as the supervisor does once it applies its
  // default) the mode-dependent rules hold.
  NetworkRequest resolved;
  resolved.mode = NetworkMode::kBridge;
  EXPECT_FALSE(ValidateNetworkRequest(resolved));
  resolved.bridge = "br-lab";
  EXPECT_TRUE(ValidateNetworkRequest(resolved));
}

TEST(ApiValidationTest, InterfaceNames) {
  for (std::string name : {"br0"s, "br-lab"s, "a"s, "agentvm0"s, std::string(15, 'x'), "br_lab.10"s}) {
    EXPECT_TRUE(ValidateInterfaceName(name, "bridge")) << name;
  }
  for (std::string name : {""s, "."s, ".."s, std::string(16, 'x'), "a/b"s, "a:1"s, "a b"s, "a\nb"s,
                           "a\0b"s, "\xff"s, "br%d"s}) {
    auto result = ValidateInterfaceName(name, "bridge");
    ASSERT_FALSE(result) << name;
    EXPECT_NE(result.error().message.find("invalid bridge"), std::string::npos);
  }
}

TEST(ApiValidationTest, ExecBody) {
  auto request = ParseExecBody(
      R"({"argv":["sh","-c","echo hi"],"env":{"A_1":"x"},"cwd":"/tmp","timeout_sec":2.5,"stdin":"in"})");
  ASSERT_TRUE(request) << request.error().message;
  EXPECT_EQ(request->argv, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_EQ(request->env.at("A_1"), "x");
  EXPECT_EQ(request->cwd, "/tmp");
  EXPECT_EQ(request->timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(request->stdin_data, "in");

  auto binary = ParseExecBody(R"({"argv":["cat"],"stdin_b64":"/wA="})");
  ASSERT_TRUE(binary);
  EXPECT_EQ(binary->stdin_data, "\xff\x00"s);
  EXPECT_EQ(binary->timeout, std::chrono::milliseconds(0));
}

TEST(ApiValidationTest, ExecBodyRefusals) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "malformed JSON"},
      {"{}", "argv is required"},
      {R"({"argv":[]})", "non-empty array"},
      {R"({"argv":"ls"})", "non-empty array"},
      {R"({"argv":["ls",1]})", "non-empty array"},
      {R"({"argv":[""]})", "argv[0]"},
      {R"({"argv":["a\u0000b"]})", "NUL"},
      {R"({"argv":["ls"],"env":{"1X":"y"}})", "environment variable name"},
      {R"({"argv":["ls"],"env":{"A=B":"y"}})", "environment variable name"},
      {R"({"argv":["ls"],"env":{"A":1}})", "env values must be strings"},
      {R"({"argv":["ls"],"env":["A"]})", "env must be an object"},
      {R"({"argv":["ls"],"cwd":"tmp"})", "cwd must be an absolute path"},
      {R"({"argv":["ls"],"cwd":"/a/../b"})", "cwd must not contain"},
      {R"({"argv":["ls"],"timeout_sec":-1})", "timeout_sec must be between"},
      {R"({"argv":["ls"],"timeout_sec":"5"})", "timeout_sec must be a number"},
      {R"({"argv":["ls"],"timeout_sec":1e300})", "timeout_sec must be between"},
      {R"({"argv":["ls"],"stdin":"a","stdin_b64":"YQ=="})", "not both"},
      {R"({"argv":["ls"],"stdin_b64":"!!"})", "not valid base64"},
      {R"({"argv":["ls"],"shell":true})", "unknown field \"shell\""},
  };
  for (const auto& [body, expected] : cases) {
    auto result = ParseExecBody(body);
    ASSERT_FALSE(result) << body;
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << body << " -> " << result.error().message;
  }
}

TEST(ApiValidationTest, CreateBodyBoot) {
  EXPECT_EQ(ParseCreateVmBody("").value().boot, BootMode::kAuto);
  EXPECT_EQ(ParseCreateVmBody(R"({"boot":"auto"})").value().boot, BootMode::kAuto);
  EXPECT_EQ(ParseCreateVmBody(R"({"boot":"restore"})").value().boot, BootMode::kRestore);
  EXPECT_EQ(ParseCreateVmBody(R"({"boot":"cold","image":"tiny"})").value().boot, BootMode::kCold);
  const std::pair<std::string, std::string> cases[] = {
      {R"({"boot":"warm"})", R"(boot must be one of "auto", "restore", "cold"; got "warm")"},
      {R"({"boot":"Cold"})", R"(got "Cold")"},
      {R"({"boot":""})", R"(got "")"},
      {R"({"boot":1})", "got 1"},
      {R"({"boot":null})", "got null"},
      {R"({"boot":["cold"]})", "got an array"},
  };
  for (const auto& [body, expected] : cases) {
    auto result = ParseCreateVmBody(body);
    ASSERT_FALSE(result) << body;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << body << " -> " << result.error().message;
  }
}

TEST(ApiValidationTest, SaveSnapshotBody) {
  EXPECT_EQ(ParseSaveSnapshotBody(R"({"name":"before-upgrade"})").value(), "before-upgrade");
  const std::pair<std::string, std::string> cases[] = {
      {"", "is required"},
      {"  \n", "is required"},
      {"{}", "name is required"},
      {"{", "malformed JSON"},
      {R"(["s1"])", "JSON object"},
      {R"("s1")", "JSON object"},
      {R"({"name":1})", "name must be a string"},
      {R"({"name":null})", "name must be a string"},
      {R"({"name":"s1","memory":true})", "unknown field \"memory\""},
      {R"({"name":""})", "invalid snapshot name"},
      {R"({"name":".."})", "invalid snapshot name"},
      {R"({"name":"a/b"})", "invalid snapshot name"},
      {R"({"name":"a%2Fb"})", "invalid snapshot name"},
      {R"({"name":")" + std::string(65, 'n') + "\"}", "invalid snapshot name"},
      {std::string(1000, '{'), "nested deeper"},
  };
  for (const auto& [body, expected] : cases) {
    auto result = ParseSaveSnapshotBody(body);
    ASSERT_FALSE(result) << body.substr(0, 40);
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find(expected), std::string::npos)
        << body.substr(0, 40) << " -> " << result.error().message;
  }
}

TEST(ApiValidationTest, QueryParameters) {
  EXPECT_EQ(ParseDeleteQuery({}).value(), false);
  EXPECT_EQ(ParseDeleteQuery({{"force", "true"}}).value(), true);
  EXPECT_EQ(ParseDeleteQuery({{"force", "0"}}).value(), false);
  EXPECT_FALSE(ParseDeleteQuery({{"force", "yes"}}));
  EXPECT_FALSE(ParseDeleteQuery({{"recursive", "1"}}));

  auto put = ParsePutFileQuery({{"path", "/tmp/x"}, {"mode", "0755"}});
  ASSERT_TRUE(put);
  EXPECT_EQ(put->path, "/tmp/x");
  EXPECT_EQ(put->mode, 0755u);
  EXPECT_EQ(ParsePutFileQuery({{"path", "/x"}}).value().mode, 0644u);
  EXPECT_FALSE(ParsePutFileQuery({{"path", "/x"}, {"mode", "0888"}}));
  EXPECT_FALSE(ParsePutFileQuery({{"path", "/x"}, {"mode", "17777"}}));
  EXPECT_FALSE(ParsePutFileQuery({{"path", "/x"}, {"mode", ""}}));
  EXPECT_FALSE(ParsePutFileQuery({{"mode", "0644"}}));
  EXPECT_FALSE(ParsePutFileQuery({{"path", "../etc/shadow"}}));

  EXPECT_EQ(ParseGetFileQuery({{"path", "/etc/hostname"}}).value(), "/etc/hostname");
  EXPECT_FALSE(ParseGetFileQuery({{"path", "/etc/../etc/shadow"}}));
  EXPECT_FALSE(ParseGetFileQuery({{"path", "/x"}, {"mode", "0644"}}));

  EXPECT_EQ(ParseConsoleQuery({}).value(), kDefaultConsoleBytes);
  EXPECT_EQ(ParseConsoleQuery({{"max_bytes", "100"}}).value(), 100u);
  EXPECT_FALSE(ParseConsoleQuery({{"max_bytes", "0"}}));
  EXPECT_FALSE(ParseConsoleQuery({{"max_bytes", "-1"}}));
  EXPECT_FALSE(ParseConsoleQuery({{"max_bytes", "999999999"}}));

  EXPECT_TRUE(ExpectNoQuery({}));
  EXPECT_FALSE(ExpectNoQuery({{"x", ""}}));
}

}  // namespace
}  // namespace agentvm::api
