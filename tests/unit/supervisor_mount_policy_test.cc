#include "supervisor/mount_policy.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "supervisor/vm_mounts.h"

namespace agentvm {
namespace {

namespace fs = std::filesystem;

// A tree of its own under the test's temp dir:
//   root/                 the mount root
//     repo/ sub/          mountable
//     file                not a directory
//     escape -> outside   a symlink leading out of the root
//     inside -> repo      a symlink staying in it
//   outside/
//   state/ (run, images)  the daemon's own dirs
class MountPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::path(::testing::TempDir()) / ("mount-policy-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    for (const char* dir : {"root/repo/sub", "outside", "state/images", "run"}) fs::create_directories(base_ / dir);
    std::ofstream(base_ / "root/file") << "x";
    fs::create_directory_symlink(base_ / "outside", base_ / "root/escape");
    fs::create_directory_symlink("repo", base_ / "root/inside");
    policy_.roots = {(base_ / "root").string()};
    policy_.daemon_dirs = {(base_ / "state").string(), (base_ / "run").string(), (base_ / "state/images").string()};
    // The test's temp dir stands in for a nosuid file system.
    policy_.mounted_nosuid = [](const std::string&) { return true; };
  }
  void TearDown() override { fs::remove_all(base_); }

  Result<std::vector<VmMount>> Resolve(const std::string& source, bool readonly = false) {
    return ResolveMounts({VmMount{.source = source, .target = "/workspace", .readonly = readonly}}, policy_);
  }
  std::string Path(const char* relative) const { return (base_ / relative).string(); }

  fs::path base_;
  MountPolicy policy_;
};

TEST_F(MountPolicyTest, ADirectoryUnderARootIsResolvedToItsCanonicalPath) {
  auto resolved = Resolve(Path("root/repo"), true);
  ASSERT_TRUE(resolved) << resolved.error().message;
  ASSERT_EQ(resolved->size(), 1u);
  EXPECT_EQ((*resolved)[0].source, fs::canonical(base_ / "root/repo").string());
  EXPECT_EQ((*resolved)[0].target, "/workspace");
  EXPECT_TRUE((*resolved)[0].readonly);
  EXPECT_TRUE(Resolve(Path("root"))) << "the root itself may be mounted";
  EXPECT_TRUE(Resolve(Path("root/repo/sub/")));
}

TEST_F(MountPolicyTest, ASymlinkIsFollowedAndJudgedByWhereItLeads) {
  auto inside = Resolve(Path("root/inside"));
  ASSERT_TRUE(inside) << inside.error().message;
  EXPECT_EQ((*inside)[0].source, fs::canonical(base_ / "root/repo").string());

  auto escape = Resolve(Path("root/escape"));
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(escape.error().message.find("not under a mount root"), std::string::npos) << escape.error().message;
}

TEST_F(MountPolicyTest, OutsideTheRootsMissingOrNotADirectoryIsRefused) {
  for (const std::string& bad : {Path("outside"), Path("root/missing"), Path("root/file"), Path("rootx")}) {
    auto resolved = Resolve(bad);
    ASSERT_FALSE(resolved) << bad;
    EXPECT_EQ(resolved.error().code, ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(resolved.error().message.find("mounts[0].source"), std::string::npos) << resolved.error().message;
  }
}

TEST_F(MountPolicyTest, SystemAndDaemonDirectoriesAreRefusedWhateverTheRoots) {
  policy_.roots = {"/"};
  for (const char* bad : {"/", "/etc", "/etc/ssl", "/proc", "/sys", "/dev", "/boot"}) {
    auto resolved = Resolve(bad);
    ASSERT_FALSE(resolved) << bad;
    EXPECT_NE(resolved.error().message.find("is refused"), std::string::npos) << resolved.error().message;
  }
  // The daemon's dirs, one inside them, and one that holds them.
  for (const std::string& bad : {Path("state"), Path("state/images"), Path("run"), base_.string()}) {
    auto resolved = Resolve(bad);
    ASSERT_FALSE(resolved) << bad;
    EXPECT_NE(resolved.error().message.find("agentvmd's own"), std::string::npos) << resolved.error().message;
  }
}

TEST_F(MountPolicyTest, WithoutRootsMountsAreOffAndTheErrorSaysHowToTurnThemOn) {
  policy_.roots.clear();
  auto resolved = Resolve(Path("root/repo"));
  ASSERT_FALSE(resolved);
  EXPECT_EQ(resolved.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(resolved.error().message.find("mount_roots:"), std::string::npos) << resolved.error().message;
  auto none = ResolveMounts({}, policy_);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty()) << "no mounts need no roots";
}

TEST(VmMountShapeTest, ShapeIsChecked) {
  auto mount = [](std::string source, std::string target) { return VmMount{.source = source, .target = target}; };
  EXPECT_TRUE(ValidateMounts({mount("/src", "/workspace"), mount("/src", "/data/x/")}));
  for (const VmMount& bad : {mount("src", "/w"), mount("/src", "w"), mount("/src", "/"), mount("/src", "//"),
                             mount("/a/../etc", "/w"), mount("/src", "/w/../etc"), mount("/src", "/w/./x"),
                             mount("/src", "/w\n"), mount("", "/w")}) {
    auto checked = ValidateMounts({bad});
    ASSERT_FALSE(checked) << bad.source << " " << bad.target;
    EXPECT_EQ(checked.error().code, ErrorCode::kInvalidArgument);
  }
  auto twice = ValidateMounts({mount("/a", "/w"), mount("/b", "/w/")});
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("mounted twice"), std::string::npos);
  std::vector<VmMount> many(kMaxMounts + 1, mount("/a", "/w"));
  for (std::size_t i = 0; i < many.size(); ++i) many[i].target += std::to_string(i);
  EXPECT_FALSE(ValidateMounts(many));
}

TEST(VmMountShapeTest, RecordRoundTrips) {
  std::vector<VmMount> mounts = {{.source = "/home/u/repo", .target = "/workspace", .readonly = false},
                                 {.source = "/data", .target = "/data", .readonly = true}};
  auto back = MountsFromRecord(MountsToRecord(mounts));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].source, "/data");
  EXPECT_TRUE(back[1].readonly);
  EXPECT_EQ(MountsToRecord({}), "");
  EXPECT_TRUE(MountsFromRecord("").empty());
}

TEST_F(MountPolicyTest, AReadWriteSourceMustBeOnANosuidFileSystemAReadOnlyOneNeedNot) {
  policy_.mounted_nosuid = [](const std::string&) { return false; };
  auto refused = Resolve(Path("root/repo"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("nosuid"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(Resolve(Path("root/repo"), /*readonly=*/true)) << "a guest cannot set modes on a read-only mount";
}

}  // namespace
}  // namespace agentvm
