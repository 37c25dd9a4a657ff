// -v/--volume on run and create: docker's HOST:GUEST[:ro], a relative HOST
// resolved against the current directory here (the daemon has another).
#include <filesystem>

#include <gtest/gtest.h>

#include "cli/cli_args.h"

namespace agentvm::cli {
namespace {

std::expected<CliCommand, UsageError> Parse(std::vector<std::string> args) {
  return ParseCli(args, "", [](const std::string&) { return std::optional<std::string>(); });
}

TEST(CliVolumeTest, AbsoluteRelativeAndReadOnlyVolumes) {
  auto command = Parse({"run", "-v", "/srv/repo:/workspace", "--volume", "data:/data:ro", "--volume=./x/../y:/y:rw",
                        "--", "true"});
  ASSERT_TRUE(command) << command.error().message;
  const auto& mounts = command->vm.mounts;
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_EQ(mounts[0].source, "/srv/repo");
  EXPECT_EQ(mounts[0].target, "/workspace");
  EXPECT_FALSE(mounts[0].readonly);
  const auto cwd = std::filesystem::current_path();
  EXPECT_EQ(mounts[1].source, (cwd / "data").string());
  EXPECT_TRUE(mounts[1].readonly);
  EXPECT_EQ(mounts[2].source, (cwd / "y").string());
  EXPECT_FALSE(mounts[2].readonly);
  EXPECT_EQ(Parse({"create", "-v", "/a:/b"})->vm.mounts.size(), 1u);
}

TEST(CliVolumeTest, BadVolumesAreUsageErrors) {
  for (const char* bad : {"/only-host", ":/w", "/h:", "/h:relative", "/h:/", "/h:/w/../etc"}) {
    auto command = Parse({"create", "-v", bad});
    ASSERT_FALSE(command) << bad;
    EXPECT_NE(command.error().message.find("volume"), std::string::npos) << command.error().message;
  }
  auto twice = Parse({"create", "-v", "/a:/w", "-v", "/b:/w"});
  ASSERT_FALSE(twice);
}

}  // namespace
}  // namespace agentvm::cli
