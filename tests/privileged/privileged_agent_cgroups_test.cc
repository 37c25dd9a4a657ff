// Each exec in a cgroup of its own, through the real agent binary (--fd)
// given a directory in this host's cgroup2 hierarchy: a timeout, a kill
// from the host and the host going away end everything the exec started,
// also what left its process group (setsid) or its parent (a double fork);
// a normal end leaves background work running, and its cgroup goes with it.
// Privileged tier: only root may make cgroups.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "guest-images/agent/testing/agent_harness.h"
#include "protocol/messages.h"

namespace agentvm::guest {
namespace {

using namespace std::chrono_literals;
using testing::AgentProcess;
using testing::Cgroup2Mount;
using testing::FrameClient;
using testing::ProcessGone;

bool EventuallyGone(const std::vector<pid_t>& pids, std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (pid_t pid : pids) all = all && ProcessGone(pid);
    if (all) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<pid_t> Pids(const std::string& text) {
  std::vector<pid_t> pids;
  std::istringstream in(text);
  long pid;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

class AgentCgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string mount = Cgroup2Mount();
    ASSERT_FALSE(mount.empty()) << "no cgroup2 mount on this host";
    root_ = mount + "/agentvm-test-" + std::to_string(::getpid());
    std::string error;
    agent_ = AgentProcess::Start({"--exec-cgroups", root_}, &error);
    ASSERT_NE(agent_, nullptr) << error;
    client_ = std::make_unique<FrameClient>(agent_->host_fd());
  }
  void TearDown() override {
    client_.reset();
    agent_.reset();
    // Whatever a failed test left: killed, then the directories removed.
    if (std::filesystem::exists(root_)) {
      for (const auto& entry : std::filesystem::directory_iterator(root_)) {
        if (!entry.is_directory()) continue;
        std::ofstream(entry.path() / "cgroup.kill") << "1";
        for (int i = 0; i < 100 && ::rmdir(entry.path().c_str()) != 0; ++i) std::this_thread::sleep_for(20ms);
      }
      EXPECT_EQ(::rmdir(root_.c_str()), 0) << root_;
    }
  }

  // Starts `script`; the pids it prints on its first line(s) until `count` are seen.
  std::vector<pid_t> StartPrintingPids(std::uint32_t stream, const std::string& script, std::size_t count,
                                       std::chrono::milliseconds timeout = 0ms) {
    protocol::ExecRequest request;
    request.argv = {"/bin/sh", "-c", script};
    request.timeout = timeout;
    EXPECT_TRUE(client_->Send(protocol::ExecFrame(stream, request, "", true)));
    std::string out;
    while (Pids(out).size() < count || out.back() != '\n') {
      auto frame = client_->Next(5s);
      if (!frame) break;
      if (frame->type == protocol::kTypeStdout) out += frame->payload;
      if (frame->type == protocol::kTypeExit || frame->type == protocol::kTypeError) break;
    }
    return Pids(out);
  }

  std::size_t ExecCgroupsLeft() const {
    std::size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root_)) n += entry.is_directory();
    return n;
  }

  // The cgroup an exec of `script` ran in, from its /proc/self/cgroup.
  std::string CgroupOf(std::uint32_t stream, const std::string& script) {
    protocol::ExecRequest request;
    request.argv = {"/bin/sh", "-c", script + "\ncat /proc/self/cgroup"};
    auto outcome = client_->Exec(stream, request);
    EXPECT_TRUE(outcome.result.has_value());
    auto at = outcome.out.find("/agentvm-test-");
    return at == std::string::npos ? outcome.out : outcome.out.substr(at, outcome.out.find('\n', at) - at);
  }

  static constexpr const char* kEscapees =
      "setsid sleep 100 >/dev/null 2>&1 & echo $!; (sleep 100 >/dev/null 2>&1 & echo $!); exec sleep 100";

  std::string root_;
  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<FrameClient> client_;
};

TEST_F(AgentCgroupsTest, ATimeoutKillsWhatLeftTheProcessGroup) {
  auto pids = StartPrintingPids(1, kEscapees, 2, 800ms);
  ASSERT_EQ(pids.size(), 2u);
  auto outcome = client_->Outcome(1);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_TRUE(outcome.result->timed_out);
  EXPECT_TRUE(EventuallyGone(pids, 3s)) << "a setsid'd or double-forked child survived the timeout";
}

TEST_F(AgentCgroupsTest, AKillFromTheHostKillsWhatLeftTheProcessGroup) {
  auto pids = StartPrintingPids(2, kEscapees, 2);
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_TRUE(client_->Send(protocol::SignalFrame(2, SIGKILL)));
  auto outcome = client_->Outcome(2);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.result->signal, SIGKILL);
  EXPECT_TRUE(EventuallyGone(pids, 3s));
}

TEST_F(AgentCgroupsTest, TheHostGoingAwayKillsEverything) {
  auto pids = StartPrintingPids(3, kEscapees, 2);
  ASSERT_EQ(pids.size(), 2u);
  agent_->CloseHostFd();  // the agent (--fd) drops its execs and exits
  ASSERT_TRUE(agent_->WaitExit(5s).has_value());
  EXPECT_TRUE(EventuallyGone(pids, 3s));
}

TEST_F(AgentCgroupsTest, ANormalEndLeavesBackgroundWorkWhoseCgroupThenGoes) {
  auto pids = StartPrintingPids(4, "setsid sleep 1 >/dev/null 2>&1 & echo $!", 1);
  ASSERT_EQ(pids.size(), 1u);
  auto outcome = client_->Outcome(4);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ(outcome.result->exit_code, 0);
  EXPECT_FALSE(ProcessGone(pids[0])) << "background work is the user's, like a shell's";
  EXPECT_EQ(ExecCgroupsLeft(), 1u);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ExecCgroupsLeft() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(ExecCgroupsLeft(), 0u) << "the agent keeps a cgroup whose last process is gone";
}

TEST_F(AgentCgroupsTest, EachExecGetsItsOwnCgroup) {
  auto outcome = client_->Exec(5, [] {
    protocol::ExecRequest request;
    request.argv = {"/bin/sh", "-c", "cat /proc/self/cgroup"};
    return request;
  }());
  ASSERT_TRUE(outcome.result.has_value());
  std::string leaf = "/agentvm-test-" + std::to_string(::getpid()) + "/exec-";
  EXPECT_NE(outcome.out.find(leaf), std::string::npos) << outcome.out;
}

// An exec's cgroup that is empty when it ends serves the next exec (no
// mkdir and rmdir per exec); one that background work still uses does not.
TEST_F(AgentCgroupsTest, AnEmptiedCgroupServesTheNextExecAndABusyOneDoesNot) {
  std::string first = CgroupOf(6, "true");
  ASSERT_NE(first.find("/exec-"), std::string::npos) << first;
  EXPECT_EQ(CgroupOf(7, "true"), first);
  EXPECT_EQ(CgroupOf(8, "setsid sleep 2 >/dev/null 2>&1 &"), first);
  std::string next = CgroupOf(9, "true");
  ASSERT_NE(next.find("/exec-"), std::string::npos) << next;
  EXPECT_NE(next, first) << "a cgroup with a process left in it was given to another exec";
}

// Cgroups an earlier agent left behind (it crashed, or its background work
// still runs) are not in the way of a new one's names.
TEST_F(AgentCgroupsTest, ALeftoverCgroupNameIsSkipped) {
  ::mkdir(root_.c_str(), 0755);  // unless the agent has made it already
  ASSERT_EQ(::mkdir((root_ + "/exec-1").c_str(), 0755), 0);
  std::string cgroup = CgroupOf(10, "true");
  EXPECT_NE(cgroup.find("/exec-2"), std::string::npos) << cgroup;
}

}  // namespace
}  // namespace agentvm::guest
