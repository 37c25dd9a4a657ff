#include "supervisor/child_process.h"

#include <cstdio>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace agentvm {
namespace {

// Runs one coroutine to completion on a fresh io_context.
template <class T>
T RunTask(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  auto future = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
  io.run();
  io.restart();
  return future.get();
}

// Reads a file the test had a child write, and removes it.
std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::remove(path.c_str());
  return buffer.str();
}

TEST(ChildProcessTest, ReportsExitCodeAndRedirectsOutput) {
  boost::asio::io_context io;
  const std::string out = ::testing::TempDir() + "/child-out.txt";
  auto child = ChildProcess::Launch(io.get_executor(),
                                    {.argv = {"sh", "-c", "echo hello; exit 3"}, .stdout_path = out});
  ASSERT_TRUE(child) << child.error().message;
  ExitStatus status = RunTask(io, (*child)->WaitExit());
  EXPECT_EQ(status.code, 3);
  EXPECT_EQ(status.Describe(), "exited with status 3");
  EXPECT_EQ(Slurp(out), "hello\n");
}

TEST(ChildProcessTest, WaitBlockingReapsWithoutRunningTheIoContext) {
  boost::asio::io_context io;
  auto child = ChildProcess::Launch(io.get_executor(), {.argv = {"sh", "-c", "exit 4"}});
  ASSERT_TRUE(child) << child.error().message;
  EXPECT_EQ((*child)->WaitBlocking().code, 4);
  ASSERT_TRUE((*child)->exit_status());
  EXPECT_EQ((*child)->exit_status()->code, 4);
  EXPECT_EQ(::kill((*child)->pid(), 0), -1) << "reaped, so the pid is gone";
}

TEST(ChildProcessTest, SeesDeathBySignal) {
  boost::asio::io_context io;
  auto child = ChildProcess::Launch(io.get_executor(), {.argv = {"sleep", "30"}});
  ASSERT_TRUE(child);
  ::kill((*child)->pid(), SIGKILL);
  ExitStatus status = RunTask(io, (*child)->WaitExit());
  EXPECT_EQ(status.signal, SIGKILL);
  EXPECT_NE(status.Describe().find("signal 9"), std::string::npos);
}

TEST(ChildProcessTest, DestructorKillsAndReapsARunningChild) {
  boost::asio::io_context io;
  pid_t pid;
  {
    auto child = ChildProcess::Launch(io.get_executor(), {.argv = {"sleep", "30"}});
    ASSERT_TRUE(child);
    pid = (*child)->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0) << "child " << pid << " outlived its owner";
}

TEST(ChildProcessTest, PassesOnlyTheFdsItIsGiven) {
  boost::asio::io_context io;
  int passed[2], kept[2];
  ASSERT_EQ(::pipe(passed), 0);        // inheritable
  ASSERT_EQ(::pipe2(kept, 0), 0);      // also inheritable, but not listed
  const std::string out = ::testing::TempDir() + "/child-fds.txt";
  const std::string script = "for fd in " + std::to_string(passed[1]) + " " + std::to_string(kept[1]) +
                             "; do if [ -e /proc/self/fd/$fd ]; then echo open $fd; else echo closed $fd; fi; done";
  auto child = ChildProcess::Launch(io.get_executor(),
                                    {.argv = {"sh", "-c", script}, .stdout_path = out, .pass_fds = {passed[1]}});
  ASSERT_TRUE(child);
  EXPECT_TRUE(RunTask(io, (*child)->WaitExit()).success());
  EXPECT_EQ(Slurp(out), "open " + std::to_string(passed[1]) + "\nclosed " + std::to_string(kept[1]) + "\n");
  for (int fd : {passed[0], passed[1], kept[0], kept[1]}) ::close(fd);
}

TEST(ChildProcessTest, MissingProgramIsAClearError) {
  boost::asio::io_context io;
  auto child = ChildProcess::Launch(io.get_executor(), {.argv = {"agentvm-no-such-program"}});
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().message.find("agentvm-no-such-program"), std::string::npos);
}

TEST(ChildProcessTest, RunToCompletionCarriesStderrOnFailure) {
  boost::asio::io_context io;
  const std::string err = ::testing::TempDir() + "/child-err.txt";
  auto result = RunTask(io, RunToCompletion(io.get_executor(), {"sh", "-c", "echo broken disk >&2; exit 1"}, err));
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("broken disk"), std::string::npos) << result.error().message;
  std::remove(err.c_str());
}

}  // namespace
}  // namespace agentvm
