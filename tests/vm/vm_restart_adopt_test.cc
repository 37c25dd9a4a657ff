// A daemon that dies (kill -9) and starts again keeps its VMs: it adopts
// every QEMU still running for a VM recorded running, with the same id,
// address, disk and firewall; a QEMU that died meanwhile is reported failed;
// a QEMU under its run dir that no record owns is killed. With
// --keep-vms-on-exit (the systemd unit's), SIGTERM does the same as a crash.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/command.h"
#include "tests/support/daemon.h"
#include "tests/support/net_world.h"

extern char** environ;

namespace agentvm::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string Web(int port) { return "http://" + std::string(NetWorld::kWebAddress) + ":" + std::to_string(port) + "/"; }

std::size_t CountOf(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

class VmRestartAdoptTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "the vm tier runs as root"; }

  json Create(const std::string& body) {
    auto [status, text] = daemon_->Http("POST", "/v1/vms", body);
    EXPECT_EQ(status, 201) << text << daemon_->Log();
    return json::parse(text, nullptr, false);
  }
  json Inspect(const std::string& id) { return daemon_->Inspect(id); }
  json WaitSettled(const std::string& id) { return daemon_->WaitSettled(id); }
  CommandResult Guest(const std::string& id, const std::string& script) {
    return daemon_->Cli({"exec", id, "--", "sh", "-c", script});
  }
  std::string Ruleset() { return world_.InDaemon({"nft", "list", "ruleset"}).out; }

  NetWorld world_;
  std::unique_ptr<Daemon> daemon_ = std::make_unique<Daemon>(
      DaemonOptions{.netns = world_.daemon_ns(),
                    .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress), "--keep-vms-on-exit"}});
};

TEST_F(VmRestartAdoptTest, VmsSurviveADaemonCrashAndWhatCannotBeAdoptedIsCleanedUp) {
  const json filtered = Create(R"({"network": {"mode": "nat-filtered"}})");
  const json sealed = Create(R"({"network": {"mode": "isolated"}})");
  ASSERT_TRUE(filtered.is_object() && sealed.is_object());
  const std::string fid = filtered["id"], sid = sealed["id"];
  const std::string address = filtered["network"]["address"], tap = filtered["network"]["tap"];
  ASSERT_EQ(Guest(fid, "echo kept > /kept.txt && sync").exit_code, 0);
  ASSERT_EQ(Guest(fid, "timeout 5 wget -q -O- " + Web(80)).exit_code, 0);
  // A refused connection too, before the count: the kernel gives the VM's
  // address an element in the sets it fills (vm_conns, vm_log_rate) on its
  // first such packet, and the same traffic after adoption must find
  // exactly as many mentions of it.
  ASSERT_NE(Guest(fid, "timeout 5 wget -q -O- " + Web(8080)).exit_code, 0);
  const std::string rules_before = Ruleset();
  const std::size_t tap_mentions = CountOf(rules_before, tap), address_mentions = CountOf(rules_before, address);
  ASSERT_GT(tap_mentions, 0u) << rules_before;

  daemon_->CrashAndRestart();
  for (const std::string& id : {fid, sid}) {
    const json info = WaitSettled(id);
    EXPECT_EQ(info.value("state", ""), "running") << info.dump() << daemon_->Log();
    EXPECT_NE(info.value("reason", "").find("execs that were streaming"), std::string::npos) << info.dump();
  }
  EXPECT_EQ(Inspect(fid)["network"]["address"], address);
  EXPECT_EQ(Inspect(sid)["network"]["mode"], "isolated");
  auto kept = Guest(fid, "cat /kept.txt");
  EXPECT_EQ(kept.out, "kept\n") << kept.err;
  EXPECT_EQ(Guest(sid, "echo alive").out, "alive\n");
  // Still reaches the web, still filtered.
  auto fetched = Guest(fid, "timeout 5 wget -q -O- " + Web(80));
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_NE(Guest(fid, "timeout 5 wget -q -O- " + Web(8080)).exit_code, 0) << "port 8080 must stay blocked";
  const std::string rules_after = Ruleset();
  EXPECT_EQ(CountOf(rules_after, "table inet agentvm"), 1u) << rules_after;
  EXPECT_EQ(CountOf(rules_after, tap), tap_mentions) << rules_after;
  EXPECT_EQ(CountOf(rules_after, address), address_mentions) << rules_after;
  // The console is drained again: a line the guest writes now shows up.
  Guest(fid, "echo after-adoption-marker > /dev/console");
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    seen = daemon_->Cli({"logs", fid}).out.find("after-adoption-marker") != std::string::npos;
    if (!seen) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(seen) << "the adopted VM's console is not drained";

  // While no daemon runs: the isolated VM's QEMU dies, and a QEMU nobody
  // recorded appears under the run dir.
  const int sealed_pid = Inspect(sid).value("pid", 0);
  ASSERT_GT(sealed_pid, 0);
  daemon_->Crash();
  ASSERT_EQ(::kill(sealed_pid, SIGKILL), 0);
  const std::string orphan_dir = daemon_->run_dir() + "/vms/vm-0000000000ff";
  std::filesystem::create_directories(orphan_dir);
  const std::string pidfile = orphan_dir + "/qemu.pid";
  std::vector<std::string> args = {"qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
                                   "-machine", "none", "-pidfile", pidfile};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t orphan = -1;
  ASSERT_EQ(::posix_spawnp(&orphan, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  for (int i = 0; i < 100 && !std::filesystem::exists(pidfile); ++i) std::this_thread::sleep_for(50ms);

  daemon_->Restart();
  int status = 0;
  pid_t reaped = 0;
  for (int i = 0; i < 100 && reaped == 0; ++i) {
    reaped = ::waitpid(orphan, &status, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(100ms);
  }
  if (reaped == 0) {
    ::kill(orphan, SIGKILL);
    ::waitpid(orphan, &status, 0);
  }
  EXPECT_EQ(reaped, orphan) << "the orphan QEMU was not killed";
  EXPECT_FALSE(std::filesystem::exists(orphan_dir));
  const json dead = WaitSettled(sid);
  EXPECT_EQ(dead.value("state", ""), "failed") << dead.dump();
  EXPECT_NE(dead.value("reason", "").find("qemu exited while agentvmd was not running"), std::string::npos)
      << dead.dump();
  EXPECT_EQ(WaitSettled(fid).value("state", ""), "running") << daemon_->Log();
  EXPECT_EQ(Guest(fid, "cat /kept.txt").out, "kept\n");

  // `systemctl restart` with --keep-vms-on-exit: SIGTERM leaves the VM
  // running, and the next daemon adopts it.
  daemon_->Terminate();
  daemon_->Restart();
  EXPECT_EQ(WaitSettled(fid).value("state", ""), "running") << daemon_->Log();
  EXPECT_EQ(Guest(fid, "cat /kept.txt").out, "kept\n");

  EXPECT_EQ(daemon_->Cli({"rm", sid}).exit_code, 0);
  EXPECT_EQ(daemon_->Cli({"rm", "-f", fid}).exit_code, 0);
  daemon_.reset();  // before the world: it checks no QEMU outlived it
}

}  // namespace
}  // namespace agentvm::testing
