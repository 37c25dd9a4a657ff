#include "supervisor/jail_plan.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "supervisor/config.h"
#include "supervisor/jail.h"
#include "supervisor/vm_host.h"

namespace agentvm {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const VmPaths kPaths = VmPaths::For("/run/agentvm", "/var/lib/agentvm", "vm-0123456789ab");

QemuLaunchSpec CloneSpec() {
  return QemuLaunchSpec{
      .vm_id = "vm-0123456789ab",
      .memory_mib = 256,
      .kernel = "/var/lib/agentvm/images/tiny/vmlinuz",
      .initrd = "/var/lib/agentvm/images/tiny/initrd.img",
      .kernel_args = "console=ttyS0",
      .base_image = "/var/lib/agentvm/images/tiny/rootfs.qcow2",
      .overlay = kPaths.overlay().string(),
      .frozen_image = "/var/lib/agentvm/golden/g1/disk.qcow2",
      .qmp_fd = 5,
      .console_log = kPaths.console_log().string(),
      .pidfile = kPaths.pidfile().string(),
      .agent_fd = 6,
      .tap_fd = 7,
      .mac = "02:00:00:00:00:01",
      .incoming_defer = true,
  };
}

JailHost V1Host() {
  return JailHost{
      .qemu_path = "/usr/bin/qemu-system-x86_64",
      .root_dir = "/run/agentvm/jail-root",
      .cgroups = {.version = CgroupVersion::kV1,
                  .v1_roots = {{"memory", "/sys/fs/cgroup/memory"},
                               {"pids", "/sys/fs/cgroup/pids"},
                               {"cpu", "/sys/fs/cgroup/cpu"}}},
      .system_paths = {{"/usr", ""}, {"/lib", "usr/lib"}, {"/lib64", "usr/lib64"}},
  };
}

std::vector<std::string> Targets(const JailPlan& plan) {
  std::vector<std::string> targets;
  for (const auto& mount : plan.mounts) targets.push_back(mount.target);
  return targets;
}

const BindMount& MountAt(const JailPlan& plan, const std::string& target) {
  auto it = std::find_if(plan.mounts.begin(), plan.mounts.end(),
                         [&](const BindMount& m) { return m.target == target; });
  EXPECT_NE(it, plan.mounts.end()) << target;
  return *it;
}

TEST(JailPlanTest, SlotPicksTheUidAndGid) {
  JailConfig config;
  const JailPlan plan = MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), config, V1Host(), 7);
  EXPECT_EQ(plan.uid, 200007u);
  EXPECT_EQ(plan.gid, 200007u);
  config.uid_base = 300000;
  config.gid_base = 400000;
  const JailPlan other = MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), config, V1Host(), 0);
  EXPECT_EQ(other.uid, 300000u);
  EXPECT_EQ(other.gid, 400000u);
}

TEST(JailPlanTest, RootHoldsExactlyTheLaunchsFiles) {
  const JailPlan plan = MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), JailConfig{}, V1Host(), 0);
  // The QEMU binary is inside /usr, so it needs no mount of its own; the
  // state dir appears only as the overlay and the frozen disk.
  EXPECT_THAT(Targets(plan), ElementsAre("/dev/null", "/dev/urandom", "/run/agentvm/vms/vm-0123456789ab", "/usr",
                                         "/var/lib/agentvm/golden/g1/disk.qcow2",
                                         "/var/lib/agentvm/images/tiny/initrd.img",
                                         "/var/lib/agentvm/images/tiny/rootfs.qcow2",
                                         "/var/lib/agentvm/images/tiny/vmlinuz",
                                         "/var/lib/agentvm/vms/vm-0123456789ab/overlay.qcow2"));
  EXPECT_TRUE(MountAt(plan, "/usr").read_only);
  EXPECT_TRUE(MountAt(plan, "/usr").directory);
  EXPECT_TRUE(MountAt(plan, "/var/lib/agentvm/images/tiny/rootfs.qcow2").read_only);
  EXPECT_TRUE(MountAt(plan, "/var/lib/agentvm/golden/g1/disk.qcow2").read_only);
  EXPECT_FALSE(MountAt(plan, "/var/lib/agentvm/vms/vm-0123456789ab/overlay.qcow2").read_only);
  EXPECT_FALSE(MountAt(plan, "/run/agentvm/vms/vm-0123456789ab").read_only);
  EXPECT_TRUE(MountAt(plan, "/run/agentvm/vms/vm-0123456789ab").directory);
  EXPECT_TRUE(MountAt(plan, "/dev/urandom").device);
  EXPECT_FALSE(MountAt(plan, "/usr").device);
  for (const auto& mount : plan.mounts) EXPECT_EQ(mount.source, mount.target);

  EXPECT_THAT(plan.dirs, ElementsAre("/dev", "/run", "/run/agentvm", "/run/agentvm/vms", "/var", "/var/lib",
                                     "/var/lib/agentvm", "/var/lib/agentvm/golden", "/var/lib/agentvm/golden/g1",
                                     "/var/lib/agentvm/images", "/var/lib/agentvm/images/tiny",
                                     "/var/lib/agentvm/vms", "/var/lib/agentvm/vms/vm-0123456789ab"));
  ASSERT_EQ(plan.symlinks.size(), 2u);
  EXPECT_EQ(plan.symlinks[0].path, "/lib");
  EXPECT_EQ(plan.symlinks[0].link_target, "usr/lib");
  EXPECT_EQ(plan.program, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(plan.root_dir, "/run/agentvm/jail-root");
  EXPECT_THAT(plan.owned_paths, ElementsAre("/run/agentvm/vms/vm-0123456789ab",
                                            "/var/lib/agentvm/vms/vm-0123456789ab/overlay.qcow2"));
}

TEST(JailPlanTest, AProcOfItsOwnOnlyWhenQemuOpensAnInheritedFdByPath) {
  EXPECT_FALSE(MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), JailConfig{}, V1Host(), 0).mount_proc);
  QemuLaunchSpec spec = CloneSpec();
  spec.memory = GuestMemory::kTemplateClone;
  spec.memory_fd = 9;
  const QemuLaunch launch = QemuLaunchFor(spec, kPaths);
  EXPECT_THAT(launch.pass_fds, ::testing::Contains(9));
  EXPECT_TRUE(MakeJailPlan(launch, JailConfig{}, V1Host(), 0).mount_proc);
}

TEST(JailPlanTest, KvmAndVsockAddTheirDevicesAndAQemuOutsideUsrItsBinary) {
  QemuLaunchSpec spec = CloneSpec();
  spec.accel = Accel::kKvm;
  spec.channel = ChannelKind::kVsock;
  spec.guest_cid = 5;
  JailHost host = V1Host();
  host.qemu_path = "/opt/qemu/bin/qemu-system-x86_64";
  const JailPlan plan = MakeJailPlan(QemuLaunchFor(spec, kPaths), JailConfig{}, host, 0);
  EXPECT_TRUE(MountAt(plan, "/dev/kvm").device);
  EXPECT_TRUE(MountAt(plan, "/dev/vhost-vsock").device);
  EXPECT_TRUE(MountAt(plan, "/opt/qemu/bin/qemu-system-x86_64").read_only);
  EXPECT_EQ(plan.program, "/opt/qemu/bin/qemu-system-x86_64");
  // KVM keeps no translated-code cache.
  EXPECT_EQ(plan.memory_limit_bytes, (256ull + 256) << 20);
}

TEST(JailPlanTest, RlimitsBoundFilesThreadsAndCores) {
  JailConfig config;
  config.nofile = 2048;
  config.pids_max = 300;
  const JailPlan plan = MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), config, V1Host(), 0);
  auto limit = [&](int resource) -> std::uint64_t {
    for (const auto& r : plan.rlimits) {
      if (r.resource == resource) return r.value;
    }
    ADD_FAILURE() << "no rlimit " << resource;
    return 0;
  };
  EXPECT_EQ(limit(RLIMIT_NOFILE), 2048u);
  EXPECT_EQ(limit(RLIMIT_NPROC), 300u);
  EXPECT_EQ(limit(RLIMIT_CORE), 0u);
}

TEST(JailPlanTest, V1CgroupsPerControllerWithMemoryPidsAndShares) {
  JailConfig config;
  config.cpu_weight = 50;
  const JailPlan plan = MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), config, V1Host(), 0);
  // 256 MiB guest + 256 MiB QEMU + 1 GiB TCG code cache.
  EXPECT_EQ(plan.memory_limit_bytes, (256ull + 256 + 1024) << 20);
  const std::string memory = "/sys/fs/cgroup/memory/agentvm/vm-0123456789ab";
  const std::string pids = "/sys/fs/cgroup/pids/agentvm/vm-0123456789ab";
  const std::string cpu = "/sys/fs/cgroup/cpu/agentvm/vm-0123456789ab";
  EXPECT_THAT(plan.cgroups.create, ElementsAre("/sys/fs/cgroup/memory/agentvm", memory, "/sys/fs/cgroup/pids/agentvm",
                                               pids, "/sys/fs/cgroup/cpu/agentvm", cpu));
  ASSERT_EQ(plan.cgroups.writes.size(), 3u);
  EXPECT_EQ(plan.cgroups.writes[0].file, memory + "/memory.limit_in_bytes");
  EXPECT_EQ(plan.cgroups.writes[0].value, std::to_string(plan.memory_limit_bytes));
  EXPECT_EQ(plan.cgroups.writes[1].file, pids + "/pids.max");
  EXPECT_EQ(plan.cgroups.writes[1].value, "512");
  EXPECT_EQ(plan.cgroups.writes[2].file, cpu + "/cpu.shares");
  EXPECT_EQ(plan.cgroups.writes[2].value, "512");
  EXPECT_THAT(plan.cgroups.join, ElementsAre(memory + "/cgroup.procs", pids + "/cgroup.procs", cpu + "/cgroup.procs"));
  // The shared parent stays; only the VM's own cgroups go.
  EXPECT_THAT(plan.cgroups.remove, ElementsAre(memory, pids, cpu));
}

TEST(JailPlanTest, V2OneCgroupWithControllersEnabledAbove) {
  JailHost host = V1Host();
  host.cgroups = {.version = CgroupVersion::kV2, .v2_root = "/sys/fs/cgroup"};
  const JailPlan plan = MakeJailPlan(QemuLaunchFor(CloneSpec(), kPaths), JailConfig{}, host, 0);
  const std::string leaf = "/sys/fs/cgroup/agentvm/vm-0123456789ab";
  EXPECT_THAT(plan.cgroups.create, ElementsAre("/sys/fs/cgroup/agentvm", leaf));
  std::vector<std::string> files;
  for (const auto& write : plan.cgroups.writes) files.push_back(write.file + "=" + write.value);
  EXPECT_THAT(files, ElementsAre("/sys/fs/cgroup/cgroup.subtree_control=+memory +pids +cpu",
                                 "/sys/fs/cgroup/agentvm/cgroup.subtree_control=+memory +pids +cpu",
                                 leaf + "/memory.max=" + std::to_string(plan.memory_limit_bytes),
                                 leaf + "/pids.max=512", leaf + "/cpu.weight=100"));
  EXPECT_THAT(plan.cgroups.join, ElementsAre(leaf + "/cgroup.procs"));
  EXPECT_THAT(plan.cgroups.remove, ElementsAre(leaf));
}

TEST(JailPlanTest, LeftoverCgroupDirsAreThoseAJailMakes) {
  JailConfig config;
  CgroupHost v1{.version = CgroupVersion::kV1,
                .v1_roots = {{"memory", "/cg/memory"}, {"pids", "/cg/pids"}, {"cpu", "/cg/cpu"}}};
  const auto v1_dirs = JailCgroupDirs("vm-1", config, v1);
  // QEMU's, and those of a virtiofsd for each mount a VM may have.
  EXPECT_EQ(v1_dirs.size(), 3 * (1 + kMaxMounts));
  EXPECT_THAT(v1_dirs, ::testing::IsSupersetOf({"/cg/memory/agentvm/vm-1", "/cg/pids/agentvm/vm-1",
                                                "/cg/cpu/agentvm/vm-1", "/cg/memory/agentvm/vm-1.fs0",
                                                "/cg/cpu/agentvm/vm-1.fs7"}));
  CgroupHost v2{.version = CgroupVersion::kV2, .v2_root = "/cg2"};
  const auto v2_dirs = JailCgroupDirs("vm-1", config, v2);
  EXPECT_EQ(v2_dirs.size(), 1 + kMaxMounts);
  EXPECT_EQ(v2_dirs.front(), "/cg2/agentvm/vm-1");
  EXPECT_EQ(v2_dirs.back(), "/cg2/agentvm/vm-1.fs7");
}

TEST(JailPlanTest, AVirtiofsdsCgroupIsALeafBesideQemusWithItsOwnMemoryLimit) {
  JailConfig config;
  config.virtiofsd_memory_mib = 300;
  CgroupHost v2{.version = CgroupVersion::kV2, .v2_root = "/cg2"};
  const CgroupPlan plan = VirtiofsdCgroupPlan("vm-1", 2, config, v2);
  EXPECT_THAT(plan.join, ::testing::ElementsAre("/cg2/agentvm/vm-1.fs2/cgroup.procs"));
  EXPECT_THAT(plan.remove, ::testing::ElementsAre("/cg2/agentvm/vm-1.fs2"));
  EXPECT_THAT(plan.writes, ::testing::Contains(::testing::FieldsAre("/cg2/agentvm/vm-1.fs2/memory.max",
                                                                    std::to_string(300ull << 20))));
}

TEST(JailSlotsTest, LowestFreeSlotAndFreedWhenTheLeaseEnds) {
  auto slots = std::make_shared<JailSlots>(2);
  auto a = slots->Acquire();
  auto b = slots->Acquire();
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*a)->slot(), 0);
  EXPECT_EQ((*b)->slot(), 1);
  EXPECT_FALSE(slots->Acquire());
  a->reset();
  auto c = slots->Acquire();
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)->slot(), 0);
}

class DetectCgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/jail-cgroups-" + std::to_string(::getpid());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Touch(const std::string& relative, const std::string& text = "") {
    std::filesystem::create_directories(std::filesystem::path(root_ + "/" + relative).parent_path());
    std::ofstream(root_ + "/" + relative) << text;
  }
  std::string root_;
};

TEST_F(DetectCgroupsTest, HybridHostUsesTheV1Controllers) {
  for (const char* controller : {"memory", "pids", "cpu"}) Touch(std::string(controller) + "/cgroup.procs");
  Touch("unified/cgroup.controllers");  // the hybrid's empty v2 tree, not used
  auto host = DetectCgroups(root_);
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ(host->version, CgroupVersion::kV1);
  EXPECT_EQ(host->v1_roots.at("memory"), root_ + "/memory");
  EXPECT_EQ(host->v1_roots.at("cpu"), root_ + "/cpu");
}

TEST_F(DetectCgroupsTest, UnifiedHostUsesV2AndNeedsItsControllers) {
  Touch("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  auto host = DetectCgroups(root_);
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ(host->version, CgroupVersion::kV2);
  EXPECT_EQ(host->v2_root, root_);

  Touch("cgroup.controllers", "cpuset cpu io\n");
  auto lacking = DetectCgroups(root_);
  ASSERT_FALSE(lacking);
  EXPECT_NE(lacking.error().message.find("memory"), std::string::npos);
}

TEST_F(DetectCgroupsTest, NoControllersIsAnErrorThatNamesTheWayOut) {
  auto none = DetectCgroups(root_);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("jail: off"), std::string::npos);
}

TEST(JailConfigTest, OffOnAndAMapOfKeys) {
  const std::string path = ::testing::TempDir() + "/jail-config-" + std::to_string(::getpid()) + ".yaml";
  DaemonConfig config;
  EXPECT_TRUE(config.jail.enabled);  // on unless asked
  std::ofstream(path) << "jail: off\n";
  ASSERT_TRUE(ApplyConfigFile(path, config));
  EXPECT_FALSE(config.jail.enabled);

  std::ofstream(path) << "jail:\n  uid_base: 300000\n  slots: 16\n  memory_overhead_mib: 128\n  cpu_weight: 200\n";
  DaemonConfig mapped;
  auto applied = ApplyConfigFile(path, mapped);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_TRUE(mapped.jail.enabled);
  EXPECT_EQ(mapped.jail.uid_base, 300000);
  EXPECT_EQ(mapped.jail.slots, 16);
  EXPECT_EQ(mapped.jail.memory_overhead_mib, 128);
  EXPECT_EQ(mapped.jail.cpu_weight, 200);
  EXPECT_TRUE(ValidateConfig(mapped));

  std::ofstream(path) << "jail:\n  uid_bas: 1\n";
  auto typo = ApplyConfigFile(path, mapped);
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("jail.uid_bas"), std::string::npos);
  std::remove(path.c_str());

  DaemonConfig root_uid;
  root_uid.jail.uid_base = 0;
  EXPECT_FALSE(ValidateConfig(root_uid));
  DaemonConfig bad_cgroup;
  bad_cgroup.jail.cgroup_name = "../x";
  EXPECT_FALSE(ValidateConfig(bad_cgroup));
}

}  // namespace
}  // namespace agentvm
