#include "supervisor/process_identity.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

// A fake /proc with one process.
class FakeProc {
 public:
  FakeProc() : root_(fs::temp_directory_path() / ("fake-proc-" + std::to_string(::getpid()))) {
    fs::create_directories(root_);
  }
  ~FakeProc() { fs::remove_all(root_); }
  void Add(pid_t pid, const std::string& comm, std::uint64_t start_time, const std::string& cmdline) {
    const fs::path dir = root_ / std::to_string(pid);
    fs::create_directories(dir);
    // Fields 3..21 are filler; 22 is the start time.
    std::ofstream(dir / "stat") << pid << " (" << comm << ") S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 "
                                << start_time << " 1000 100\n";
    std::ofstream(dir / "cmdline", std::ios::binary) << cmdline;
  }
  std::string path() const { return root_.string(); }

 private:
  fs::path root_;
};

TEST(ProcessIdentityTest, ReadsTheStartTimeEvenWhenTheNameHasSpacesAndParens) {
  FakeProc proc;
  proc.Add(42, "qemu (x) y", 123456, std::string("qemu\0-name\0", 11));
  EXPECT_EQ(ProcessStartTime(42, proc.path()), 123456u);
  EXPECT_EQ(ProcessStartTime(43, proc.path()), std::nullopt);
}

TEST(ProcessIdentityTest, ARecordedQemuMatchesPidStartTimeAndCommandLine) {
  FakeProc proc;
  const std::string cmdline = std::string("qemu-system-x86_64\0-pidfile\0/run/agentvm/vms/vm-1/qemu.pid\0", 59);
  proc.Add(42, "qemu-system-x86", 1000, cmdline);
  EXPECT_TRUE(IsRecordedQemu(42, 1000, "/run/agentvm/vms/vm-1", proc.path()));
  // A recycled pid: another start time, or another command line.
  EXPECT_FALSE(IsRecordedQemu(42, 999, "/run/agentvm/vms/vm-1", proc.path()));
  EXPECT_FALSE(IsRecordedQemu(42, 1000, "/run/agentvm/vms/vm-2", proc.path()));
  EXPECT_FALSE(IsRecordedQemu(43, 1000, "/run/agentvm/vms/vm-1", proc.path()));
  // A record from before start times were kept still needs the command line.
  EXPECT_TRUE(IsRecordedQemu(42, 0, "/run/agentvm/vms/vm-1", proc.path()));
  EXPECT_FALSE(IsRecordedQemu(0, 0, "/run/agentvm/vms/vm-1", proc.path()));
}

TEST(ProcessIdentityTest, FindsProcessesByArgument) {
  FakeProc proc;
  proc.Add(7, "a", 1, std::string("qemu\0/run/x/vms/vm-a/q\0", 23));
  proc.Add(8, "b", 1, std::string("sleep\0" "10\0", 9));
  EXPECT_EQ(ProcessesWithArg("/run/x/vms/", proc.path()), std::vector<pid_t>{7});
}

TEST(ProcessIdentityTest, TheRealProcessHasAStartTime) {
  EXPECT_TRUE(ProcessStartTime(::getpid()).has_value());
  EXPECT_NE(ProcessCommandLine(::getpid()).find("unit_supervisor"), std::string::npos);
}

}  // namespace
}  // namespace agentvm
