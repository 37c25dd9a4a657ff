// The QEMU command line is golden-tested: any change to it shows up as a diff
// of tests/unit/testdata/*.args, one argument per line, in review.
// Regenerate with AGENTVM_UPDATE_GOLDEN=1 after an intended change.
#include "supervisor/qemu_command_line.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace agentvm {
namespace {

QemuLaunchSpec ExampleSpec() {
  return QemuLaunchSpec{
      .qemu_binary = "qemu-system-x86_64",
      .vm_id = "vm-0123456789ab",
      .accel = Accel::kTcg,
      .cpus = 2,
      .memory_mib = 512,
      .kernel = "/images/tiny/vmlinuz",
      .initrd = "/images/tiny/initrd.img",
      .kernel_args = "console=ttyS0 root=/dev/vda rw agentvm.channel=serial",
      .base_image = "/images/tiny/rootfs.qcow2",
      .overlay = "/state/vms/vm-0123456789ab/overlay.qcow2",
      .qmp_fd = 5,
      .console_fd = 4,
      .pidfile = "/run/agentvm/vms/vm-0123456789ab/qemu.pid",
      .channel = ChannelKind::kVirtioSerial,
      .agent_fd = 6,
  };
}

void ExpectMatchesGolden(const std::vector<std::string>& argv, const std::string& name) {
  const std::string path = std::string(AGENTVM_TESTDATA_DIR) + "/" + name;
  std::string actual;
  for (const auto& arg : argv) actual += arg + "\n";
  if (const char* update = std::getenv("AGENTVM_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(path) << actual;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path << " (run with AGENTVM_UPDATE_GOLDEN=1)";
  std::stringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(actual, expected.str()) << "QEMU command line changed; if intended, regenerate " << path;
}

TEST(QemuCommandLineTest, TcgWithVirtioSerialMatchesGolden) {
  ExpectMatchesGolden(QemuCommandLine(ExampleSpec()), "qemu_tcg_virtio_serial.args");
}

TEST(QemuCommandLineTest, KvmWithVsockMatchesGolden) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.accel = Accel::kKvm;
  spec.channel = ChannelKind::kVsock;
  spec.guest_cid = 42;
  ExpectMatchesGolden(QemuCommandLine(spec), "qemu_kvm_vsock.args");
}

TEST(QemuCommandLineTest, TapNicAndIncomingMatchGolden) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.tap_fd = 7;
  spec.mac = "02:0a:65:00:00:05";
  spec.incoming_defer = true;
  ExpectMatchesGolden(QemuCommandLine(spec), "qemu_tap_incoming.args");
}

TEST(QemuCommandLineTest, MountsPutRamOnASharedMemfdAndAddVhostUserFsMatchGolden) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.memory = GuestMemory::kSharedMemfd;
  spec.fs_devices = {{.tag = "agentvm-fs0", .fd = 8}, {.tag = "agentvm-fs1", .fd = 9}};
  ExpectMatchesGolden(QemuCommandLine(spec), "qemu_mounts.args");
}

TEST(QemuCommandLineTest, WithoutMountsRamIsPrivateAsBefore) {
  for (const auto& arg : QemuCommandLine(ExampleSpec())) {
    EXPECT_EQ(arg.find("memory-backend"), std::string::npos) << arg;
    EXPECT_EQ(arg.find("vhost-user-fs"), std::string::npos) << arg;
  }
}

TEST(QemuCommandLineTest, TemplateSourceMapsItsRamFdSharedMatchesGolden) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.memory = GuestMemory::kTemplateSource;
  spec.memory_fd = 11;
  ExpectMatchesGolden(QemuCommandLine(spec), "qemu_template_source.args");
}

TEST(QemuCommandLineTest, TemplateCloneMapsTheTemplatePrivateMatchesGolden) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.memory = GuestMemory::kTemplateClone;
  spec.memory_fd = 12;
  spec.frozen_image = "/state/golden/tiny-1c-256m/disk.qcow2";
  spec.incoming_defer = true;
  ExpectMatchesGolden(QemuCommandLine(spec), "qemu_template_clone.args");
}

TEST(QemuCommandLineTest, RestoredCloneOnFrozenDiskMatchesGolden) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.frozen_image = "/state/golden/tiny-1c-256m/disk.qcow2";
  spec.incoming_defer = true;
  ExpectMatchesGolden(QemuCommandLine(spec), "qemu_restore_frozen_disk.args");
}

TEST(QemuCommandLineTest, NoTapMeansNoNetworkDevice) {
  for (const auto& arg : QemuCommandLine(ExampleSpec())) {
    EXPECT_EQ(arg.find("net"), std::string::npos) << arg;
  }
}

TEST(QemuCommandLineTest, NeverAsksForHostCpuUnderTcg) {
  // Under TCG `-cpu host` is an error: TCG emulates QEMU's `max` model,
  // whose AVX2 Claude Code's runtime needs (the default qemu64 has none).
  const auto argv = QemuCommandLine(ExampleSpec());
  auto cpu = std::find(argv.begin(), argv.end(), "-cpu");
  ASSERT_NE(cpu, argv.end());
  ASSERT_NE(cpu + 1, argv.end());
  EXPECT_EQ(*(cpu + 1), "max");
}

TEST(QemuCommandLineTest, CommasInPathsAreEscapedForQemuOptions) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.console_fd = -1;
  spec.console_log = "/run/a,b/console.log";
  const auto argv = QemuCommandLine(spec);
  EXPECT_NE(std::find(argv.begin(), argv.end(), "file,id=console0,path=/run/a,,b/console.log"),
            argv.end());
}

TEST(QemuCommandLineTest, DiskIsAnOverlayOnAReadOnlyBase) {
  const auto argv = QemuCommandLine(ExampleSpec());
  auto it = std::find(argv.begin(), argv.end(), "-blockdev");
  ASSERT_NE(it, argv.end());
  const auto disk = nlohmann::json::parse(*(it + 1));
  EXPECT_EQ(disk["file"]["filename"], "/state/vms/vm-0123456789ab/overlay.qcow2");
  EXPECT_EQ(disk["backing"]["file"]["filename"], "/images/tiny/rootfs.qcow2");
  EXPECT_EQ(disk["backing"]["read-only"], true);
  EXPECT_FALSE(disk["backing"].contains("backing"));
}

TEST(QemuCommandLineTest, FrozenDiskSitsReadOnlyBetweenOverlayAndBase) {
  QemuLaunchSpec spec = ExampleSpec();
  spec.frozen_image = "/state/golden/g/disk.qcow2";
  const auto argv = QemuCommandLine(spec);
  auto it = std::find(argv.begin(), argv.end(), "-blockdev");
  ASSERT_NE(it, argv.end());
  const auto disk = nlohmann::json::parse(*(it + 1));
  EXPECT_EQ(disk["file"]["filename"], "/state/vms/vm-0123456789ab/overlay.qcow2");
  EXPECT_FALSE(disk.contains("read-only"));
  const auto& frozen = disk["backing"];
  EXPECT_EQ(frozen["file"]["filename"], "/state/golden/g/disk.qcow2");
  EXPECT_EQ(frozen["read-only"], true);
  EXPECT_EQ(frozen["file"]["read-only"], true);
  const auto& base = frozen["backing"];
  EXPECT_EQ(base["file"]["filename"], "/images/tiny/rootfs.qcow2");
  EXPECT_EQ(base["read-only"], true);
  EXPECT_EQ(base["file"]["read-only"], true);
  EXPECT_FALSE(base.contains("backing"));
}

}  // namespace
}  // namespace agentvm
