#include "supervisor/api/request_validation.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace agentvm::api {
namespace {

using namespace std::string_literals;

TEST(ApiValidationTest, VmIds) {
  for (std::string id : {"vm-1"s, "a"s, "0"s, "abc-def-123"s, std::string(64, 'a')}) {
    EXPECT_TRUE(ValidateVmId(id)) << id;
  }
  for (std::string id : {""s, "-a"s, "A"s, "vm_1"s, "vm.1"s, ".."s, "../x"s, "a/b"s, "a;rm -rf /"s,
                         "a$(id)"s, "a`id`"s, "a\0b"s, std::string(65, 'a'), std::string(4096, 'x'),
                         "vm-1\n"s}) {
    auto result = ValidateVmId(id);
    ASSERT_FALSE(result) << id;
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(ApiValidationTest, ImageNames) {
  for (std::string name : {"tiny", "debian-12", "img_1.2"}) EXPECT_TRUE(ValidateImageName(name));
  for (std::string name : {""s, "."s, ".."s, "../tiny"s, ".hidden"s, "Tiny"s, "a/b"s, "a b"s,
                           std::string(65, 'a')}) {
    EXPECT_FALSE(ValidateImageName(name)) << name;
  }
}

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

TEST(ApiValidationTest, QuoteForErrorIsShortAndPrintable) {
  std::string quoted = QuoteForError("a\nb\0c"s + std::string(4096, 'z'));
  EXPECT_EQ(quoted.find('\n'), std::string::npos);
  EXPECT_NE(quoted.find("\\x0a"), std::string::npos);
  EXPECT_LT(quoted.size(), 120u);
}

}  // namespace
}  // namespace agentvm::api
