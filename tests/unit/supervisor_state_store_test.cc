#include "supervisor/state_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <gtest/gtest.h>

namespace agentvm {
namespace {

VmRecord Example(const std::string& id, std::int64_t created_at) {
  return VmRecord{.id = id, .image = "tiny", .state = "running", .cpus = 1, .memory_mib = 256,
                  .accel = "tcg", .channel = "virtio-serial", .guest_cid = 0, .pid = 1234,
                  .runtime_dir = "/run/agentvm/vms/" + id, .disk_dir = "/var/lib/agentvm/vms/" + id,
                  .reason = "", .created_at = created_at};
}

TEST(StateStoreTest, PutGetListDelete) {
  auto store = StateStore::Open(":memory:");
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*store)->Put(Example("vm-b", 2)));
  ASSERT_TRUE((*store)->Put(Example("vm-a", 1)));

  auto got = (*store)->Get("vm-b");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->pid, 1234);
  EXPECT_EQ((*got)->runtime_dir, "/run/agentvm/vms/vm-b");

  VmRecord changed = Example("vm-b", 2);
  changed.state = "failed";
  changed.reason = "qemu killed by signal 9";
  ASSERT_TRUE((*store)->Put(changed));
  EXPECT_EQ((*(*store)->Get("vm-b"))->reason, "qemu killed by signal 9");

  auto list = (*store)->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "vm-a");  // oldest first

  ASSERT_TRUE((*store)->Delete("vm-a"));
  EXPECT_FALSE((*(*store)->Get("vm-a")).has_value());
  EXPECT_EQ((*store)->List()->size(), 1u);
}

TEST(StateStoreTest, SurvivesReopen) {
  const std::string path = ::testing::TempDir() + "/agentvm-state-test.db";
  std::remove(path.c_str());
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE((*store)->Put(Example("vm-x", 5)));
  }
  auto reopened = StateStore::Open(path);
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->List()->size(), 1u);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(StateStoreTest, ADamagedDatabaseIsRefusedAndLeftAsItWas) {
  const std::string garbage = ::testing::TempDir() + "/agentvm-state-garbage.db";
  const std::string damaged = ::testing::TempDir() + "/agentvm-state-damaged.db";
  for (const auto& path : {garbage, damaged}) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((path + suffix).c_str());
  }
  std::ofstream(garbage, std::ios::binary) << std::string(8192, 'x');
  {
    auto store = StateStore::Open(damaged);
    ASSERT_TRUE(store);
    for (int i = 0; i < 40; ++i) ASSERT_TRUE((*store)->Put(Example("vm-" + std::to_string(i), i)));
  }
  {
    // A b-tree page overwritten in the middle of the file.
    std::string bytes = Slurp(damaged);
    ASSERT_GT(bytes.size(), 3 * 4096u);
    std::fill(bytes.begin() + 4096, bytes.begin() + 8192, '\xab');
    std::ofstream(damaged, std::ios::binary | std::ios::trunc) << bytes;
  }
  for (const auto& path : {garbage, damaged}) {
    const std::string before = Slurp(path);
    auto opened = StateStore::Open(path);
    ASSERT_FALSE(opened) << path;
    EXPECT_NE(opened.error().message.find("is damaged"), std::string::npos) << opened.error().message;
    EXPECT_NE(opened.error().message.find("mv " + path), std::string::npos) << opened.error().message;
    EXPECT_FALSE(StateStore::CheckIntegrity(path));
    EXPECT_TRUE(Slurp(path) == before) << path << " was written to";
    EXPECT_FALSE(std::filesystem::exists(path + "-journal"));
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove((path + suffix).c_str());
  }
  EXPECT_TRUE(StateStore::CheckIntegrity(::testing::TempDir() + "/agentvm-state-absent.db")) << "absent is fine";
}

TEST(StateStoreTest, PoolFieldsRoundTrip) {
  auto store = StateStore::Open(":memory:");
  ASSERT_TRUE(store) << store.error().message;
  VmRecord ready = Example("vm-ready", 1);
  ready.network = R"({"mode":"isolated"})";
  ready.boot = "restore";
  ready.pool = "tiny-1c-256m-isolated";
  ready.unclaimed = true;
  VmRecord taken = Example("vm-taken", 2);
  taken.boot = "pool";
  taken.pool = "tiny-1c-256m-isolated";
  taken.unclaimed = false;
  ASSERT_TRUE((*store)->Put(ready));
  ASSERT_TRUE((*store)->Put(taken));

  auto got = (*store)->Get("vm-ready");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->network, R"({"mode":"isolated"})");
  EXPECT_EQ((*got)->boot, "restore");
  EXPECT_EQ((*got)->pool, "tiny-1c-256m-isolated");
  EXPECT_TRUE((*got)->unclaimed);

  auto list = (*store)->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].id, "vm-taken");
  EXPECT_EQ((*list)[1].boot, "pool");
  EXPECT_EQ((*list)[1].pool, "tiny-1c-256m-isolated");
  EXPECT_FALSE((*list)[1].unclaimed);

  // Claiming a pool VM is a Put of the same id: the flag goes back to false.
  ready.unclaimed = false;
  ready.boot = "pool";
  ASSERT_TRUE((*store)->Put(ready));
  EXPECT_FALSE((*(*store)->Get("vm-ready"))->unclaimed);
  EXPECT_EQ((*(*store)->Get("vm-ready"))->boot, "pool");
}

// What a restarted daemon needs to adopt a VM (the QEMU's start time) and
// what it reports about it (the guest channel's failure) are kept.
TEST(StateStoreTest, AdoptionFieldsRoundTrip) {
  auto store = StateStore::Open(":memory:");
  ASSERT_TRUE(store) << store.error().message;
  VmRecord record = Example("vm-adopt", 1);
  record.qemu_start_time = 123456789;
  record.guest_channel_error = "guest sent a malformed frame";
  ASSERT_TRUE((*store)->Put(record));
  auto got = (*store)->Get("vm-adopt");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->qemu_start_time, 123456789u);
  EXPECT_EQ((*got)->guest_channel_error, "guest sent a malformed frame");
}

// Writes a database the way an older agentvmd left it, with sqlite3 itself.
void MakeOldDatabase(const std::string& path, const std::string& create_vms, const std::string& insert) {
  std::remove(path.c_str());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const std::string sql = create_vms + insert;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

void RemoveDatabase(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

// The vms table of the first release: no network, boot, pool, unclaimed.
constexpr char kFirstVmsTable[] =
    "CREATE TABLE vms ("
    "  id TEXT PRIMARY KEY, image TEXT NOT NULL, state TEXT NOT NULL,"
    "  cpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, accel TEXT NOT NULL,"
    "  channel TEXT NOT NULL, guest_cid INTEGER NOT NULL, pid INTEGER NOT NULL,"
    "  runtime_dir TEXT NOT NULL, disk_dir TEXT NOT NULL, reason TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);";

TEST(StateStoreTest, OldDatabaseGetsTheNewColumnsAndKeepsItsRows) {
  const std::string path = ::testing::TempDir() + "/agentvm-state-old-test.db";
  RemoveDatabase(path);
  ASSERT_NO_FATAL_FAILURE(MakeOldDatabase(
      path, kFirstVmsTable,
      "INSERT INTO vms VALUES ('vm-old', 'tiny', 'stopped', 2, 512, 'tcg', 'virtio-serial', 0, 0,"
      " '/run/agentvm/vms/vm-old', '/var/lib/agentvm/vms/vm-old', 'stopped by user', 7);"));
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store) << store.error().message;
    auto list = (*store)->List();
    ASSERT_TRUE(list) << list.error().message;
    ASSERT_EQ(list->size(), 1u);
    const VmRecord& old = (*list)[0];
    EXPECT_EQ(old.id, "vm-old");
    EXPECT_EQ(old.state, "stopped");
    EXPECT_EQ(old.cpus, 2);
    EXPECT_EQ(old.memory_mib, 512);
    EXPECT_EQ(old.disk_dir, "/var/lib/agentvm/vms/vm-old");
    EXPECT_EQ(old.reason, "stopped by user");
    EXPECT_EQ(old.created_at, 7);
    EXPECT_EQ(old.network, "");
    EXPECT_EQ(old.boot, "");
    EXPECT_EQ(old.pool, "");
    EXPECT_FALSE(old.unclaimed);

    // The new columns take values too.
    VmRecord fresh = Example("vm-new", 8);
    fresh.boot = "restore";
    fresh.pool = "tiny-1c-256m-isolated";
    fresh.unclaimed = true;
    ASSERT_TRUE((*store)->Put(fresh));
  }
  // A second open finds the columns there and adds nothing twice.
  auto reopened = StateStore::Open(path);
  ASSERT_TRUE(reopened) << reopened.error().message;
  auto list = (*reopened)->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "vm-old");
  EXPECT_EQ((*list)[1].pool, "tiny-1c-256m-isolated");
  EXPECT_TRUE((*list)[1].unclaimed);
  EXPECT_EQ((*list)[1].boot, "restore");
  reopened->reset();
  RemoveDatabase(path);
}

TEST(StateStoreTest, DatabaseWithNetworkColumnOnlyGetsTheRest) {
  // The schema between the network and the snapshot work: network, no boot/pool/unclaimed.
  const std::string path = ::testing::TempDir() + "/agentvm-state-mid-test.db";
  RemoveDatabase(path);
  ASSERT_NO_FATAL_FAILURE(MakeOldDatabase(
      path, std::string(kFirstVmsTable) + "ALTER TABLE vms ADD COLUMN network TEXT NOT NULL DEFAULT '';",
      "INSERT INTO vms VALUES ('vm-mid', 'tiny', 'running', 1, 256, 'tcg', 'virtio-serial', 0, 42,"
      " '/run/a', '/var/b', '', 9, '{\"mode\":\"nat-filtered\"}');"));
  {
    auto store = StateStore::Open(path);
    ASSERT_TRUE(store) << store.error().message;
    auto got = (*store)->Get("vm-mid");
    ASSERT_TRUE(got && got->has_value()) << (got ? "no row" : got.error().message);
    EXPECT_EQ((*got)->network, R"({"mode":"nat-filtered"})");
    EXPECT_EQ((*got)->pid, 42);
    EXPECT_EQ((*got)->boot, "");
    EXPECT_EQ((*got)->pool, "");
    EXPECT_FALSE((*got)->unclaimed);
  }
  RemoveDatabase(path);
}

TEST(StateStoreTest, UnopenableDatabaseIsAClearError) {
  auto store = StateStore::Open("/nonexistent-dir/agentvm.db");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/agentvm.db"), std::string::npos);
}

}  // namespace
}  // namespace agentvm
