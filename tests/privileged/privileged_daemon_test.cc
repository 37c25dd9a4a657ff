// agentvmd as root in its own network namespace: the API's answers to bad
// input, socket permissions and a clean SIGTERM. No VM boots here (the vm
// tier does that), so the image dir is an empty temp dir.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/daemon.h"
#include "tests/support/netns.h"

namespace agentvm::testing {
namespace {

class PrivilegedDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "the privileged tier must run as root"; }
};

// Asserts an error response: the status, a JSON body with "error" text.
void ExpectJsonError(const std::pair<int, std::string>& response, int status, const std::string& mentions = "") {
  EXPECT_EQ(response.first, status) << response.second;
  auto body = nlohmann::json::parse(response.second, nullptr, false);
  ASSERT_TRUE(body.is_object()) << "not JSON: " << response.second;
  ASSERT_TRUE(body.contains("error")) << response.second;
  if (!mentions.empty()) {
    EXPECT_NE(body["error"].get<std::string>().find(mentions), std::string::npos) << response.second;
  }
}

TEST_F(PrivilegedDaemonTest, SocketIsGroupReadableOnlyAndSigtermRemovesIt) {
  NetNamespace netns;
  TempDir images("avm-img");
  std::string socket;
  {
    Daemon daemon({.image_dir = images.str(), .netns = netns.name()});
    socket = daemon.socket();
    struct stat st{};
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
  }
  EXPECT_FALSE(std::filesystem::exists(socket)) << "agentvmd left its socket behind";
}

TEST_F(PrivilegedDaemonTest, BadInputGetsClearErrorsAndTheDaemonKeepsServing) {
  NetNamespace netns;
  TempDir images("avm-img");
  Daemon daemon({.image_dir = images.str(), .netns = netns.name()});

  ExpectJsonError(daemon.Http("POST", "/v1/vms", "{\"image\": "), 400);
  ExpectJsonError(daemon.Http("POST", "/v1/vms", "[1,2,3]"), 400);
  ExpectJsonError(daemon.Http("POST", "/v1/vms", R"({"image": "tiny", "cpus": "many"})"), 400);
  ExpectJsonError(daemon.Http("POST", "/v1/vms", R"({"image": "nope"})"), 404, "nope");
  ExpectJsonError(daemon.Http("POST", "/v1/vms", R"({"image": "../../etc"})"), 400);
  ExpectJsonError(daemon.Http("POST", "/v1/vms", R"({"image": "tiny; rm -rf /"})"), 400);
  ExpectJsonError(daemon.Http("GET", "/v1/vms/vm-000000000000"), 404, "vm-000000000000");
  ExpectJsonError(daemon.Http("GET", "/v1/vms/..%2F..%2Fetc%2Fpasswd"), 400);
  ExpectJsonError(daemon.Http("DELETE", "/v1/vms/%24%28reboot%29"), 400);
  ExpectJsonError(daemon.Http("GET", "/v1/vms/" + std::string(4096, 'x')), 400);
  ExpectJsonError(daemon.Http("POST", "/v1/vms/vm-000000000000/exec", R"({"argv": []})"), 400);
  ExpectJsonError(daemon.Http("GET", "/v1/vms/vm-000000000000/files?path=relative/path"), 400);

  // Still serving, and none of that created anything.
  auto list = daemon.Http("GET", "/v1/vms");
  EXPECT_EQ(list.first, 200);
  EXPECT_EQ(nlohmann::json::parse(list.second)["vms"].size(), 0u) << list.second;
  EXPECT_TRUE(daemon.running());
  EXPECT_FALSE(std::filesystem::exists(daemon.state_dir() + "/vms")) << "bad input left files behind";
}

TEST_F(PrivilegedDaemonTest, CliNamesTheCauseOfErrors) {
  NetNamespace netns;
  TempDir images("avm-img");
  Daemon daemon({.image_dir = images.str(), .netns = netns.name()});

  auto missing = daemon.Cli({"inspect", "vm-000000000000"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("vm-000000000000"), std::string::npos) << missing.err;

  auto unknown_image = daemon.Cli({"create", "--image", "nope"});
  EXPECT_NE(unknown_image.exit_code, 0);
  EXPECT_NE(unknown_image.err.find("nope"), std::string::npos) << unknown_image.err;

  auto no_daemon = RunCommand({BinPath("agentvm"), "--socket", daemon.root() + "/absent.sock", "ls"});
  EXPECT_NE(no_daemon.exit_code, 0);
  EXPECT_NE(no_daemon.err.find("absent.sock"), std::string::npos) << no_daemon.err;
}

TEST_F(PrivilegedDaemonTest, RejectsABadConfigFile) {
  TempDir dir("avm-cfg");
  const std::string config = dir.str() + "/agentvmd.yaml";
  {
    std::ofstream(config) << "acel: tcg\n";
  }
  auto result = RunCommand({BinPath("agentvmd"), "--config", config, "--socket", dir.str() + "/s.sock"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown key 'acel'"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace agentvm::testing
