// The user namespace a mount's virtiofsd runs in (virtiofsd.h MountIdMaps):
// the guest's default user is the owner, guest root is squashed, nothing
// else is mapped, and the owner can never be the squash id.
#include <algorithm>

#include <gtest/gtest.h>

#include "supervisor/config.h"
#include "supervisor/virtiofsd.h"

namespace agentvm {
namespace {

constexpr UserIds kOwner{.uid = 1001, .gid = 1002};
constexpr UserIds kSquash{.uid = 200007, .gid = 200007};

TEST(VirtiofsdIdsTest, AGuestWithAnUnprivilegedDefaultUserWritesAsTheOwnerAndItsRootIsSquashed) {
  auto maps = MountIdMaps(kOwner, UserIds{.uid = 1000, .gid = 1000}, kSquash);
  ASSERT_TRUE(maps) << maps.error().message;
  EXPECT_EQ(maps->uids, (std::vector<IdMapping>{{0, 200007}, {1000, 1001}}));
  EXPECT_EQ(maps->gids, (std::vector<IdMapping>{{0, 200007}, {1000, 1002}}));
  EXPECT_EQ(IdMapText(maps->uids), "0 200007 1\n1000 1001 1\n");
}

TEST(VirtiofsdIdsTest, WhenRootIsTheDefaultUserRootWritesAsTheOwnerAndNothingIsSquashed) {
  auto maps = MountIdMaps(kOwner, UserIds{}, kSquash);
  ASSERT_TRUE(maps) << maps.error().message;
  EXPECT_EQ(maps->uids, (std::vector<IdMapping>{{0, 1001}}));
  EXPECT_EQ(maps->gids, (std::vector<IdMapping>{{0, 1002}}));
}

TEST(VirtiofsdIdsTest, TheHostsRootAsOwnerIsMappedLikeAnyOther) {
  auto maps = MountIdMaps(UserIds{}, UserIds{.uid = 1000, .gid = 1000}, kSquash);
  ASSERT_TRUE(maps) << maps.error().message;
  EXPECT_EQ(maps->uids, (std::vector<IdMapping>{{0, 200007}, {1000, 0}}));
}

TEST(VirtiofsdIdsTest, AnOwnerThatIsTheSquashIdIsRefused) {
  auto same_uid = MountIdMaps(UserIds{.uid = 200007, .gid = 5}, UserIds{.uid = 1000, .gid = 1000}, kSquash);
  ASSERT_FALSE(same_uid);
  EXPECT_EQ(same_uid.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(same_uid.error().message.find("squash"), std::string::npos) << same_uid.error().message;
  EXPECT_FALSE(MountIdMaps(UserIds{.uid = 5, .gid = 200007}, UserIds{.uid = 1000, .gid = 1000}, kSquash));
}

TEST(VirtiofsdIdsTest, MountOwnerParsesUidColonGidAndRefusesTheRest) {
  auto ids = ParseUserIds("1000:1001");
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(*ids, (UserIds{.uid = 1000, .gid = 1001}));
  for (const char* bad : {"", "1000", "1000:", ":1000", "a:b", "1000:1000:1", "-1:0", "4294967295:0", " 1:1"}) {
    auto parsed = ParseUserIds(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_NE(parsed.error().message.find("UID:GID"), std::string::npos) << parsed.error().message;
  }
}

TEST(VirtiofsdArgvTest, NamesItsSocketAndSourceAndKeepsTheSafeOptions) {
  const VirtiofsdLaunch launch{.source = "/srv/repo", .cache = "always", .socket_path = "/run/x/vms/vm-1/fs0.sock"};
  const std::vector<std::string> argv = VirtiofsdArgv(launch);
  ASSERT_FALSE(argv.empty());
  EXPECT_EQ(argv[0], "/run/x/vms/vm-1/fs0.sock");  // how a later daemon finds a leftover one
  auto has = [&](const std::string& arg) { return std::ranges::find(argv, arg) != argv.end(); };
  EXPECT_TRUE(has("source=/srv/repo"));
  EXPECT_TRUE(has("cache=always"));
  EXPECT_TRUE(has("modcaps=-mknod"));
  EXPECT_TRUE(has("sandbox=namespace"));
}

}  // namespace
}  // namespace agentvm
