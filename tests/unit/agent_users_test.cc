// Users and login environment read from a guest's own files (no NSS).
#include "guest-images/agent/users.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace agentvm::guest {
namespace {

class UsersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/agentvm-users-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    db_ = UserDatabase{dir_ + "/passwd", dir_ + "/group", dir_ + "/environment"};
    Write(db_.passwd,
          "root:x:0:0:root:/root:/bin/bash\n"
          "# a comment\n"
          "broken line\n"
          "agent:x:1000:1000:Agent,,,:/home/agent:/bin/bash\n"
          "nohome:x:1001:1001:::\n");
    Write(db_.group,
          "root:x:0:\n"
          "sudo:x:27:agent\n"
          "agent:x:1000:\n"
          "docker:x:998:someone,agent,other\n"
          "agentish:x:997:agents\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

  std::string dir_;
  UserDatabase db_;
};

TEST_F(UsersTest, ANameGivesItsIdsHomeShellAndGroups) {
  auto user = LookupUser("agent", db_);
  ASSERT_TRUE(user.has_value()) << user.error().message;
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->gid, 1000u);
  EXPECT_EQ(user->home, "/home/agent");
  EXPECT_EQ(user->shell, "/bin/bash");
  EXPECT_EQ(user->groups, (std::vector<gid_t>{1000, 27, 998}));
}

TEST_F(UsersTest, AUidFindsItsEntryOrRunsBare) {
  auto root = LookupUser("0", db_);
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->name, "root");
  EXPECT_EQ(root->home, "/root");
  auto bare = LookupUser("4242", db_);
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->uid, 4242u);
  EXPECT_EQ(bare->gid, 4242u);
  EXPECT_EQ(bare->home, "/");
  EXPECT_EQ(bare->shell, "/bin/sh");
}

TEST_F(UsersTest, EmptyHomeAndShellGetDefaults) {
  auto user = LookupUser("nohome", db_);
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->home, "/");
  EXPECT_EQ(user->shell, "/bin/sh");
}

TEST_F(UsersTest, UnknownAndMalformedNamesAreRefused) {
  auto unknown = LookupUser("bob", db_);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, protocol::kCodeNotFound);
  EXPECT_EQ(unknown.error().message, "user \"bob\": no such user");
  for (const char* bad : {"", "-rf", "a:b", "a b", "../x", "x\n"}) {
    auto refused = LookupUser(bad, db_);
    ASSERT_FALSE(refused.has_value()) << bad;
    EXPECT_EQ(refused.error().code, protocol::kCodeInvalidArgument) << bad;
  }
}

TEST_F(UsersTest, EnvironmentFileLinesBecomeVariables) {
  Write(db_.environment,
        "# comment\n"
        "\n"
        "LANG=C.UTF-8\n"
        "NODE_EXTRA_CA_CERTS=\"/etc/ssl/certs/ca-certificates.crt\"\n"
        "export EDITOR='vi'\n"
        "  PAGER=less\n"
        "=novalue\n"
        "BAD KEY=x\n"
        "EMPTY=\n");
  auto vars = ReadEnvironmentFile(db_.environment);
  std::vector<std::pair<std::string, std::string>> expected = {
      {"LANG", "C.UTF-8"}, {"NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"},
      {"EDITOR", "vi"},    {"PAGER", "less"},
      {"EMPTY", ""}};
  EXPECT_EQ(vars, expected);
  EXPECT_TRUE(ReadEnvironmentFile(dir_ + "/missing").empty());
}

}  // namespace
}  // namespace agentvm::guest
