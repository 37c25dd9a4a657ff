// Warm pools, clone identity and named snapshots through agentvmd, with real
// guests on the real network: one daemon (in NetWorld's namespaces, so clones
// get nat-filtered addresses) with a pool of 3 for the whole suite. The pool
// builds its golden snapshot once; every VM here is a restored clone.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/daemon.h"
#include "tests/support/net_world.h"

namespace agentvm::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kMinReady = 3;

class VmWarmPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new NetWorld();
    daemon_ = new Daemon({.netns = world_->daemon_ns(),
                          .extra_args = {"--dns-upstream", std::string(NetWorld::kDnsAddress), "--pool",
                                         "image=tiny,network=nat-filtered,min_ready=3,max_total=6",
                                         "--health-check-interval-sec", "5"},
                          .golden_snapshots = true});
  }

  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
    delete world_;
    world_ = nullptr;
  }

  static json Pool() {
    auto [status, body] = daemon_->Http("GET", "/v1/pools");
    EXPECT_EQ(status, 200) << body;
    const json parsed = json::parse(body, nullptr, false);
    const json pools = parsed.is_object() ? parsed.value("pools", json()) : json();
    if (!pools.is_array() || pools.size() != 1) {
      ADD_FAILURE() << "expected one pool, got " << body;
      return json::object();
    }
    return pools[0];
  }

  // Waits until the pool has `ready` VMs ready and none starting.
  static json WaitReady(int ready, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    json pool = Pool();
    while (std::chrono::steady_clock::now() < deadline &&
           !(pool.value("ready", -1) == ready && pool.value("starting", -1) == 0)) {
      std::this_thread::sleep_for(100ms);
      pool = Pool();
    }
    return pool;
  }

  // POST /v1/vms; the VM's JSON, or a failure.
  static json Create(const json& request = json::object()) {
    auto [status, body] = daemon_->Http("POST", "/v1/vms", request.dump());
    EXPECT_EQ(status, 201) << body << "\n" << daemon_->Log();
    return json::parse(body, nullptr, false);
  }

  static void Release(const std::string& id) {
    auto [status, body] = daemon_->Http("POST", "/v1/vms/" + id + "/release");
    EXPECT_TRUE(status == 200 || status == 204) << status << " " << body;
  }

  // stdout of `sh -c command` in the guest; a failure if it exits non-zero.
  static std::string Sh(const std::string& id, const std::string& command) {
    auto result = daemon_->Cli({"exec", id, "--", "sh", "-c", command});
    EXPECT_EQ(result.exit_code, 0) << command << ": " << result.err;
    std::string out = result.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  void SetUp() override {
    // Every test starts from a full pool (the first waits for the golden
    // snapshot: one cold boot, then three restores).
    const json pool = WaitReady(kMinReady, 240s);
    ASSERT_EQ(pool.value("ready", -1), kMinReady) << pool.dump() << "\n" << daemon_->Log();
    ASSERT_TRUE(pool.value("golden_ready", false)) << pool.dump();
  }

  static NetWorld* world_;
  static Daemon* daemon_;
};

NetWorld* VmWarmPoolTest::world_ = nullptr;
Daemon* VmWarmPoolTest::daemon_ = nullptr;

TEST_F(VmWarmPoolTest, AFileWrittenInAVmIsGoneAfterReleaseAndReacquire) {
  const json first = Create();
  const std::string id = first.value("id", "");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(first.value("boot", ""), "pool") << first.dump();
  Sh(id, "echo secret > /root/left-behind && sync");
  EXPECT_EQ(Sh(id, "cat /root/left-behind"), "secret");
  Release(id);
  auto [status, body] = daemon_->Http("GET", "/v1/vms/" + id);
  EXPECT_EQ(status, 404) << "a released VM is gone: " << body;

  ASSERT_EQ(WaitReady(kMinReady, 60s).value("ready", -1), kMinReady);
  const json second = Create();
  const std::string again = second.value("id", "");
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(second.value("boot", ""), "pool");
  auto look = daemon_->Cli({"exec", again, "--", "sh", "-c", "test -e /root/left-behind"});
  EXPECT_EQ(look.exit_code, 1) << "the file of a released VM is visible in the next one";
  Release(again);
}

TEST_F(VmWarmPoolTest, TwoClonesHaveTheirOwnAddressHostnameRandomnessAndTheWallClock) {
  const json a = Create();
  const json b = Create();
  const std::string id_a = a.value("id", ""), id_b = b.value("id", "");
  ASSERT_FALSE(id_a.empty());
  ASSERT_FALSE(id_b.empty());

  // Clones of one saved guest, not two boots.
  EXPECT_EQ(a.value("boot", ""), "pool");
  EXPECT_EQ(b.value("boot", ""), "pool");

  const std::string address_a = a["network"].value("address", "");
  const std::string address_b = b["network"].value("address", "");
  EXPECT_NE(address_a, address_b);
  EXPECT_NE(Sh(id_a, "ip -4 -o addr show eth0").find(address_a + "/"), std::string::npos);
  EXPECT_NE(Sh(id_b, "ip -4 -o addr show eth0").find(address_b + "/"), std::string::npos);
  EXPECT_EQ(Sh(id_a, "cat /sys/class/net/eth0/address"), a["network"].value("mac", ""));
  EXPECT_EQ(Sh(id_a, "hostname"), id_a);
  EXPECT_EQ(Sh(id_b, "hostname"), id_b);
  // The first random bytes each clone produces after the hand-over.
  EXPECT_NE(Sh(id_a, "cat /proc/sys/kernel/random/uuid"), Sh(id_b, "cat /proc/sys/kernel/random/uuid"));

  for (const std::string& id : {id_a, id_b}) {
    const long guest = std::stol(Sh(id, "date +%s"));
    const long host = static_cast<long>(std::time(nullptr));
    EXPECT_LE(std::labs(host - guest), 5) << id << ": guest clock " << guest << ", host " << host;
    // Its own address really is its own: the firewall pins tap, MAC and
    // address, so a clone still speaking with the golden VM's would be cut off.
    EXPECT_EQ(Sh(id, "timeout 10 wget -q -O- http://" + std::string(NetWorld::kWebAddress) + "/"),
              "hello from 80");
  }
  Release(id_a);
  Release(id_b);
}

TEST_F(VmWarmPoolTest, ANamedSnapshotBringsBackAFileDeletedAfterIt) {
  const json vm = Create();
  const std::string id = vm.value("id", "");
  ASSERT_FALSE(id.empty());
  Sh(id, "echo keep me > /root/precious && sync");

  auto [saved_status, saved] = daemon_->Http("POST", "/v1/vms/" + id + "/snapshots", R"({"name":"before"})");
  ASSERT_EQ(saved_status, 201) << saved;
  EXPECT_EQ(json::parse(saved, nullptr, false).value("name", ""), "before");

  Sh(id, "rm /root/precious && sync && echo 3 > /proc/sys/vm/drop_caches");
  EXPECT_EQ(daemon_->Cli({"exec", id, "--", "test", "-e", "/root/precious"}).exit_code, 1);

  auto restore = daemon_->Cli({"snapshot", "restore", id, "before"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err << daemon_->Log();
  EXPECT_EQ(Sh(id, "cat /root/precious"), "keep me");
  // From the disk too, not only from the restored page cache.
  Sh(id, "sync && echo 3 > /proc/sys/vm/drop_caches");
  EXPECT_EQ(Sh(id, "cat /root/precious"), "keep me");
  const long guest = std::stol(Sh(id, "date +%s"));
  EXPECT_LE(std::labs(static_cast<long>(std::time(nullptr)) - guest), 5) << "clock not reset after the restore";

  auto listed = daemon_->Cli({"snapshot", "ls", id});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("before"), std::string::npos) << listed.out;
  auto twice = daemon_->Http("POST", "/v1/vms/" + id + "/snapshots", R"({"name":"before"})");
  EXPECT_EQ(twice.first, 409) << twice.second;
  auto unknown = daemon_->Cli({"snapshot", "restore", id, "never-taken"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("never-taken"), std::string::npos) << unknown.err;

  auto removed = daemon_->Cli({"snapshot", "rm", id, "before"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  auto [list_status, list] = daemon_->Http("GET", "/v1/vms/" + id + "/snapshots");
  EXPECT_EQ(list_status, 200);
  EXPECT_EQ(json::parse(list, nullptr, false)["snapshots"], json::array()) << list;
  Release(id);
}

TEST_F(VmWarmPoolTest, APoolOfThreeStaysAtThreeThroughTwentyTakesAndReleases) {
  const std::uint64_t taken_before = Pool().value("taken", 0ull);
  std::set<std::string> ids;
  for (int round = 0; round < 20; ++round) {
    const json pool = WaitReady(kMinReady, 60s);
    ASSERT_EQ(pool.value("ready", -1), kMinReady) << "round " << round << ": " << pool.dump();
    const json vm = Create();
    const std::string id = vm.value("id", "");
    ASSERT_FALSE(id.empty()) << "round " << round;
    EXPECT_EQ(vm.value("boot", ""), "pool") << "round " << round;
    ids.insert(id);
    EXPECT_EQ(Sh(id, "echo round " + std::to_string(round)), "round " + std::to_string(round));
    Release(id);
  }
  EXPECT_EQ(ids.size(), 20u) << "a VM was handed out twice";
  const json pool = WaitReady(kMinReady, 60s);
  EXPECT_EQ(pool.value("ready", -1), kMinReady) << pool.dump();
  EXPECT_EQ(pool.value("in_use", -1), 0) << pool.dump();
  EXPECT_EQ(pool.value("taken", 0ull) - taken_before, 20u) << pool.dump();
  // Nothing else runs: the ready VMs are the daemon's only QEMUs, and users
  // see none of them.
  auto listed = daemon_->Http("GET", "/v1/vms");
  EXPECT_EQ(json::parse(listed.second, nullptr, false)["vms"], json::array()) << listed.second;
  EXPECT_EQ(CountProcessesWithArg(daemon_->run_dir() + "/vms/"), kMinReady);
}

// Last: it restarts the suite's daemon.
TEST_F(VmWarmPoolTest, ACrashedDaemonsPoolVmsAreRemovedNotListed) {
  const json taken = Create();
  const std::string id = taken.value("id", "");
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(WaitReady(kMinReady, 60s).value("ready", -1), kMinReady);
  // The jail's memory cgroup of the taken VM (v1 here, v2 on unified hosts).
  const std::vector<std::filesystem::path> cgroup_candidates = {"/sys/fs/cgroup/memory/agentvm/" + id,
                                                                "/sys/fs/cgroup/agentvm/" + id};
  auto has_cgroup = [&] {
    return std::any_of(cgroup_candidates.begin(), cgroup_candidates.end(),
                       [](const auto& dir) { return std::filesystem::exists(dir); });
  };
  ASSERT_TRUE(has_cgroup()) << "the jail gives each QEMU a cgroup";

  daemon_->CrashAndRestart();
  // The VM a user had is adopted (listed, running again, its jail kept);
  // the pool's own VMs are not: they were killed and removed, and the new
  // daemon's pool restores fresh ones from the golden snapshot on disk.
  json vm;
  for (auto deadline = std::chrono::steady_clock::now() + 120s; std::chrono::steady_clock::now() < deadline;) {
    auto [status, body] = daemon_->Http("GET", "/v1/vms");
    ASSERT_EQ(status, 200) << body;
    const json vms = json::parse(body, nullptr, false)["vms"];
    ASSERT_EQ(vms.size(), 1u) << body;
    vm = vms[0];
    if (vm.value("state", "") != "starting") break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(vm.value("id", ""), id);
  EXPECT_EQ(vm.value("state", ""), "running") << vm.dump() << daemon_->Log();
  EXPECT_TRUE(has_cgroup()) << "an adopted VM keeps its jail";
  const json pool = WaitReady(kMinReady, 60s);
  EXPECT_EQ(pool.value("ready", -1), kMinReady) << pool.dump();
  EXPECT_EQ(pool.value("in_use", -1), 1) << pool.dump();
  EXPECT_EQ(CountProcessesWithArg(daemon_->run_dir() + "/vms/"), kMinReady + 1);
  EXPECT_EQ(daemon_->Cli({"rm", "-f", id}).exit_code, 0);
  EXPECT_FALSE(has_cgroup()) << "rm gives the adopted VM's jail back";
}

}  // namespace
}  // namespace agentvm::testing
