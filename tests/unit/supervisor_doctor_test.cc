// agentvmd --doctor's verdicts on made-up hosts: what it says, what it tells
// the operator to fix, and that only real problems fail it.
#include "supervisor/doctor.h"

#include <gtest/gtest.h>

namespace agentvm {
namespace {

using Level = DoctorFinding::Level;

// A host that can run everything: KVM, vsock, QEMU, an image, cgroups v2.
DoctorFacts GoodHost() {
  DoctorFacts facts;
  facts.host = HostFacts{.kvm_usable = true, .cpu_virtualization = true, .vhost_vsock = true};
  facts.kvm_device_exists = true;
  facts.root = true;
  facts.qemu_version = std::string("QEMU emulator version 7.2.22");
  facts.qemu_img_version = std::string("qemu-img version 7.2.22");
  facts.cgroups = CgroupHost{.version = CgroupVersion::kV2, .v2_root = "/sys/fs/cgroup"};
  facts.images = {"debian", "tiny"};
  facts.networks = {{"lo", "127.0.0.0/8"}, {"eth0", "192.168.1.0/24"}};
  facts.state_dir_free_bytes = 100ull << 30;
  facts.run_dir_free_bytes = 1ull << 30;
  facts.virtiofsd_runs = true;
  return facts;
}

const DoctorFinding* Find(const std::vector<DoctorFinding>& findings, const std::string& check) {
  for (const DoctorFinding& finding : findings) {
    if (finding.check == check) return &finding;
  }
  return nullptr;
}

TEST(DoctorTest, AGoodHostPassesEveryCheck) {
  const auto findings = Diagnose(DaemonConfig{}, GoodHost());
  for (const DoctorFinding& finding : findings) {
    EXPECT_EQ(finding.level, Level::kOk) << finding.check << ": " << finding.detail;
  }
  EXPECT_EQ(DoctorExitCode(findings), 0);
  const std::string report = FormatDoctorReport(findings);
  EXPECT_NE(report.find("KVM"), std::string::npos) << report;
  EXPECT_NE(report.find("debian, tiny in /var/lib/agentvm/images"), std::string::npos) << report;
  EXPECT_NE(report.find("agentvmd can run VMs on this host"), std::string::npos) << report;
}

TEST(DoctorTest, NoKvmIsAWarningThatSaysWhyAndAFailureWhenKvmIsDemanded) {
  DoctorFacts facts = GoodHost();
  facts.host.kvm_usable = false;
  facts.kvm_device_exists = false;
  auto findings = Diagnose(DaemonConfig{}, facts);
  const DoctorFinding* accel = Find(findings, "accelerator");
  ASSERT_NE(accel, nullptr);
  EXPECT_EQ(accel->level, Level::kWarn);
  EXPECT_NE(accel->detail.find("TCG"), std::string::npos);
  EXPECT_NE(accel->detail.find("/dev/kvm does not exist"), std::string::npos);
  EXPECT_NE(accel->fix.find("kvm_intel"), std::string::npos);
  EXPECT_EQ(DoctorExitCode(findings), 0);  // TCG runs, slowly

  DaemonConfig kvm_only;
  kvm_only.accel = "kvm";
  findings = Diagnose(kvm_only, facts);
  EXPECT_EQ(Find(findings, "accelerator")->level, Level::kFail);
  EXPECT_EQ(DoctorExitCode(findings), 1);

  facts.kvm_device_exists = true;
  facts.host.kvm_usable = true;
  facts.host.cpu_virtualization = false;
  EXPECT_NE(Find(Diagnose(DaemonConfig{}, facts), "accelerator")->detail.find("neither vmx nor svm"),
            std::string::npos);
}

TEST(DoctorTest, VirtioSerialIsFineWithoutVsock) {
  DoctorFacts facts = GoodHost();
  facts.host.vhost_vsock = false;
  const auto findings = Diagnose(DaemonConfig{}, facts);
  EXPECT_EQ(Find(findings, "guest channel")->level, Level::kOk);
  EXPECT_NE(Find(findings, "guest channel")->detail.find("virtio-serial"), std::string::npos);
}

TEST(DoctorTest, MissingPiecesFailWithWhatToDo) {
  DoctorFacts facts = GoodHost();
  facts.root = false;
  facts.qemu_version = Fail(ErrorCode::kNotFound, "No such file or directory");
  facts.images.clear();
  facts.nftables = Fail(ErrorCode::kUnavailable, "Operation not permitted");
  facts.cgroups = Fail(ErrorCode::kUnavailable, "no memory controller");
  facts.jail_range_accounts = {"user build"};
  DaemonConfig config;
  config.image_dir = "/srv/images";
  const auto findings = Diagnose(config, facts);
  for (const char* check : {"privileges", "qemu", "images", "nftables", "cgroups", "jail ids"}) {
    const DoctorFinding* finding = Find(findings, check);
    ASSERT_NE(finding, nullptr) << check;
    EXPECT_EQ(finding->level, Level::kFail) << check;
    EXPECT_FALSE(finding->fix.empty()) << check;
  }
  EXPECT_EQ(Find(findings, "images")->fix, "agentvm-build-image tiny --out /srv/images");
  EXPECT_EQ(DoctorExitCode(findings), 1);
  const std::string report = FormatDoctorReport(findings);
  EXPECT_NE(report.find("FAIL  images"), std::string::npos) << report;
  EXPECT_NE(report.find("6 problem(s) to fix"), std::string::npos) << report;
}

TEST(DoctorTest, ASubnetTheHostUsesClashesButTheDaemonsOwnBridgeDoesNot) {
  DoctorFacts facts = GoodHost();
  DaemonConfig config;  // 10.101.0.0/16 on agentvm0
  facts.networks.push_back({"agentvm0", "10.101.0.0/16"});
  EXPECT_EQ(Find(Diagnose(config, facts), "subnet")->level, Level::kOk);

  facts.networks.push_back({"wg0", "10.0.0.0/8"});
  const DoctorFinding* subnet = Find(Diagnose(config, facts), "subnet");
  EXPECT_EQ(subnet->level, Level::kFail);
  EXPECT_NE(subnet->detail.find("10.0.0.0/8 on wg0"), std::string::npos) << subnet->detail;
}

TEST(DoctorTest, JailOffAndLowDiskAreWarnings) {
  DoctorFacts facts = GoodHost();
  facts.state_dir_free_bytes = 1ull << 30;
  DaemonConfig config;
  config.jail.enabled = false;
  const auto findings = Diagnose(config, facts);
  EXPECT_EQ(Find(findings, "jail")->level, Level::kWarn);
  EXPECT_EQ(Find(findings, "disk")->level, Level::kWarn);
  EXPECT_EQ(DoctorExitCode(findings), 0);
}

TEST(DoctorTest, MountsNeedVirtiofsdAndNosuidRoots) {
  DoctorFacts facts = GoodHost();
  DaemonConfig config;
  EXPECT_EQ(Find(Diagnose(config, facts), "mounts")->detail, "off (no mount_roots)");
  config.mount_roots = {"/srv/work"};
  facts.virtiofsd_runs = false;
  EXPECT_EQ(Find(Diagnose(config, facts), "mounts")->level, Level::kFail);
  facts.virtiofsd_runs = true;
  facts.suid_mount_roots = {"/srv/work"};
  const DoctorFinding* mounts = Find(Diagnose(config, facts), "mounts");
  EXPECT_EQ(mounts->level, Level::kWarn);
  EXPECT_NE(mounts->detail.find("/srv/work"), std::string::npos);
  facts.suid_mount_roots.clear();
  EXPECT_EQ(Find(Diagnose(config, facts), "mounts")->level, Level::kOk);
}

}  // namespace
}  // namespace agentvm
