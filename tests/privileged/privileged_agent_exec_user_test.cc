// exec as a user, with a login-like environment, through the real agent
// binary (--fd) on this host: "nobody" and bare uids exist everywhere.
// Privileged tier: only root may switch to another user.
#include <gtest/gtest.h>

#include <string>

#include "guest-images/agent/testing/agent_harness.h"
#include "protocol/messages.h"

namespace agentvm::guest {
namespace {

using testing::AgentTestBase;
using testing::ExecOutcome;

protocol::ExecRequest As(std::string user, std::string script) {
  protocol::ExecRequest request;
  request.argv = {"/bin/sh", "-c", std::move(script)};
  request.user = std::move(user);
  return request;
}

class AgentExecUserTest : public AgentTestBase {};

TEST_F(AgentExecUserTest, RunsAsTheUserWithItsLoginEnvironment) {
  ExecOutcome outcome =
      client_->Exec(1, As("nobody", "id -u; id -g; echo \"$HOME|$USER|$LOGNAME|$SHELL|$LANG\"; pwd"));
  ASSERT_TRUE(outcome.result.has_value()) << (outcome.error ? outcome.error->message : "");
  // nobody's home (/nonexistent) does not exist: it starts in /.
  EXPECT_EQ(outcome.out, "65534\n65534\n/nonexistent|nobody|nobody|/usr/sbin/nologin|C.UTF-8\n/\n");
}

TEST_F(AgentExecUserTest, ABareUidRunsWithItselfAsGroup) {
  ExecOutcome outcome = client_->Exec(2, As("4242", "id -u; id -g; id -G"));
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out, "4242\n4242\n4242\n");
}

TEST_F(AgentExecUserTest, RootByDefaultStartsInItsHome) {
  ExecOutcome outcome = client_->Exec(3, As("", "id -u; echo $HOME; pwd"));
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out, "0\n/root\n/root\n");
}

TEST_F(AgentExecUserTest, TheRequestsEnvironmentWins) {
  protocol::ExecRequest request = As("nobody", "echo \"$HOME|$LANG\"");
  request.env = {{"HOME", "/tmp"}, {"LANG", "en_US.UTF-8"}};
  ExecOutcome outcome = client_->Exec(4, request);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.out, "/tmp|en_US.UTF-8\n");
}

TEST_F(AgentExecUserTest, AnUnknownUserIsNotFoundAndRunsNothing) {
  ExecOutcome outcome = client_->Exec(5, As("no-such-user-here", "touch /tmp/agentvm-should-not-exist"));
  ASSERT_TRUE(outcome.error.has_value());
  EXPECT_EQ(outcome.error->code, protocol::kCodeNotFound);
  EXPECT_EQ(outcome.error->message, "user \"no-such-user-here\": no such user");
}

TEST_F(AgentExecUserTest, TheUsersOwnPermissionsApply) {
  ExecOutcome outcome = client_->Exec(6, As("nobody", "cat /etc/shadow"));
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_NE(outcome.result->exit_code, 0);
  EXPECT_NE(outcome.err.find("Permission denied"), std::string::npos) << outcome.err;
  // A working directory the user may not enter is the chdir's error.
  protocol::ExecRequest request = As("nobody", "pwd");
  request.cwd = "/root";
  ExecOutcome denied = client_->Exec(7, request);
  ASSERT_TRUE(denied.error.has_value());
  EXPECT_EQ(denied.error->message, "chdir /root: Permission denied");
}

}  // namespace
}  // namespace agentvm::guest
