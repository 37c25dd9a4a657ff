#include "supervisor/state_store.h"

#include <cstdio>
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

TEST(StateStoreTest, UnopenableDatabaseIsAClearError) {
  auto store = StateStore::Open("/nonexistent-dir/agentvm.db");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/agentvm.db"), std::string::npos);
}

}  // namespace
}  // namespace agentvm
