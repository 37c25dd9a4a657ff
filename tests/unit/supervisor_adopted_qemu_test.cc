#include "supervisor/adopted_qemu.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace agentvm {
namespace {

// A process standing in for a QEMU an earlier daemon left. The test is its
// parent only so it can reap it; the AdoptedQemuProcess never reaps.
pid_t StartSleeper() {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execlp("sleep", "sleep", "60", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

TEST(AdoptedQemuTest, SeesTheExitOfAProcessItCannotReapAndGivesTheJailBack) {
  boost::asio::io_context io;
  const pid_t pid = StartSleeper();
  ASSERT_GT(pid, 0);
  bool released = false;
  auto adopted = AdoptedQemuProcess::Open(io.get_executor(), pid, [&] { released = true; });
  ASSERT_TRUE(adopted) << adopted.error().message;
  EXPECT_EQ((*adopted)->pid(), pid);
  EXPECT_FALSE((*adopted)->exit_status());

  (*adopted)->Kill(SIGKILL);
  auto done = boost::asio::co_spawn(io, (*adopted)->WaitExit(), boost::asio::use_future);
  io.run();
  const ExitStatus status = done.get();
  EXPECT_EQ(status.Describe(), "exited (status unknown)");
  EXPECT_TRUE(released);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(wait_status));
}

TEST(AdoptedQemuTest, DroppingOneThatRunsKillsIt) {
  boost::asio::io_context io;
  const pid_t pid = StartSleeper();
  ASSERT_GT(pid, 0);
  int releases = 0;
  {
    auto adopted = AdoptedQemuProcess::Open(io.get_executor(), pid, [&] { ++releases; });
    ASSERT_TRUE(adopted) << adopted.error().message;
  }
  EXPECT_EQ(releases, 1);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL);
}

TEST(AdoptedQemuTest, AProcessThatIsGoneCannotBeAdopted) {
  boost::asio::io_context io;
  const pid_t pid = StartSleeper();
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_FALSE(AdoptedQemuProcess::Open(io.get_executor(), pid));
}

}  // namespace
}  // namespace agentvm
