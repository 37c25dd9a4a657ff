#include "cli/cli_format.h"

#include <gtest/gtest.h>

namespace agentvm::cli {
namespace {

TEST(CliFormatTest, Age) {
  EXPECT_EQ(FormatAge(0, 1000), "-");
  EXPECT_EQ(FormatAge(1000, 1042), "42s");
  EXPECT_EQ(FormatAge(1000, 1000 + 5 * 60 + 3), "5m");
  EXPECT_EQ(FormatAge(1000, 1000 + 3 * 3600), "3h");
  EXPECT_EQ(FormatAge(1000, 1000 + 2 * 86400 + 5), "2d");
  EXPECT_EQ(FormatAge(2000, 1000), "0s");  // clock skew
}

TEST(CliFormatTest, TableAlignsColumnsAndShowsReasons) {
  VmInfo running;
  running.id = "vm-1";
  running.image = "tiny";
  running.state = VmState::kRunning;
  running.cpus = 1;
  running.memory_mib = 256;
  running.created_at = 1000;
  VmInfo failed = running;
  failed.id = "vm-long-name";
  failed.state = VmState::kFailed;
  failed.memory_mib = 1024;
  failed.reason = "qemu killed by signal 9";
  running.network.mode = NetworkMode::kNatFiltered;
  running.network.address = "10.101.0.2";

  running.boot = "pool";
  VmInfo fell_back = running;
  fell_back.id = "vm-3";
  fell_back.boot = "cold";
  fell_back.network.address = "10.101.0.3";
  fell_back.restore_error = "state file:\nchecksum mismatch";

  std::string table = FormatVmTable({running, failed, fell_back}, 1090);
  EXPECT_EQ(table,
            "ID            IMAGE  STATE    BOOT  ADDRESS     CPUS  MEMORY   AGE  REASON\n"
            "vm-1          tiny   running  pool  10.101.0.2  1     256MiB   1m\n"
            "vm-long-name  tiny   failed   -     -           1     1024MiB  1m   qemu killed by signal 9\n"
            "vm-3          tiny   running  cold  10.101.0.3  1     256MiB   1m   "
            "restore failed: state file: checksum mismatch\n");
  EXPECT_EQ(FormatVmTable({}, 0), "ID  IMAGE  STATE  BOOT  ADDRESS  CPUS  MEMORY  AGE  REASON\n");
}

TEST(CliFormatTest, Sizes) {
  EXPECT_EQ(FormatSize(0), "0B");
  EXPECT_EQ(FormatSize(1023), "1023B");
  EXPECT_EQ(FormatSize(1024), "1KiB");
  EXPECT_EQ(FormatSize(96 << 20), "96MiB");
  EXPECT_EQ(FormatSize((std::uint64_t{5} << 30) + 1), "5GiB");
}

TEST(CliFormatTest, PoolTableShowsErrorsOnOneLine) {
  PoolInfo pool;
  pool.name = "tiny-1c-256m-isolated";
  pool.min_ready = 1;
  pool.max_total = 2;
  pool.ready = 1;
  pool.golden_ready = true;
  PoolInfo broken = pool;
  broken.name = "x-1c-256m-isolated";
  broken.ready = 0;
  broken.golden_ready = false;
  broken.replaced = 4;
  broken.last_error = "boot failed:\nno such image";
  EXPECT_EQ(FormatPoolTable({pool, broken}),
            "NAME                   READY  STARTING  IN_USE  MIN  MAX  TAKEN  REPLACED  FAILED  GOLDEN  LAST_ERROR\n"
            "tiny-1c-256m-isolated  1      0         0       1    2    0      0         0       yes\n"
            "x-1c-256m-isolated     0      0         0       1    2    0      4         0       no      "
            "boot failed: no such image\n");
}

TEST(CliFormatTest, SnapshotTable) {
  SnapshotInfo snapshot{"before-upgrade", 100663296, 1000};
  EXPECT_EQ(FormatSnapshotTable({snapshot, {"s2", 0, 0}}, 1042),
            "NAME            SIZE   AGE\n"
            "before-upgrade  96MiB  42s\n"
            "s2              0B     -\n");
  EXPECT_EQ(FormatSnapshotTable({}, 0), "NAME  SIZE  AGE\n");
}

}  // namespace
}  // namespace agentvm::cli
