#include "supervisor/cli/cli_format.h"

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

  std::string table = FormatVmTable({running, failed}, 1090);
  EXPECT_EQ(table,
            "ID            IMAGE  STATE    ADDRESS     CPUS  MEMORY   AGE  REASON\n"
            "vm-1          tiny   running  10.101.0.2  1     256MiB   1m\n"
            "vm-long-name  tiny   failed   -           1     1024MiB  1m   qemu killed by signal 9\n");
  EXPECT_EQ(FormatVmTable({}, 0), "ID  IMAGE  STATE  ADDRESS  CPUS  MEMORY  AGE  REASON\n");
}

}  // namespace
}  // namespace agentvm::cli
