// A guest whose agent never answers: the create fails with a clear error in
// bounded time, the VM is left failed (not running), and the daemon serves on.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;

// An image "mute": tiny's kernel and disks, but the kernel runs a shell on the
// console instead of the init that starts the agent. The shell waits forever
// for console input that never comes.
void MakeMuteImage(const fs::path& image_dir) {
  const fs::path tiny = fs::path(ImageDir()) / "tiny";
  const fs::path mute = image_dir / "mute";
  fs::create_directories(mute);
  for (const char* file : {"vmlinuz", "initrd.img", "rootfs.qcow2"}) fs::create_symlink(tiny / file, mute / file);
  std::ifstream in(tiny / "image.json");
  nlohmann::json meta = nlohmann::json::parse(in);
  meta["name"] = "mute";
  meta["kernel_args"] = meta["kernel_args"].get<std::string>() + " rdinit=/bin/sh";
  std::ofstream(mute / "image.json") << meta.dump(2);
}

TEST(VmFailureTest, GuestThatNeverAnswersFailsCleanly) {
  TempDir images("avm-img");
  MakeMuteImage(images.path());
  Daemon daemon({.image_dir = images.str(), .extra_args = {"--agent-timeout", "10"}});

  auto created = daemon.Cli({"create", "--image", "mute"});
  EXPECT_NE(created.exit_code, 0);
  EXPECT_NE(created.err.find("did not answer"), std::string::npos) << created.err;
  EXPECT_LT(created.elapsed, std::chrono::seconds(40));
  EXPECT_FALSE(ProcessWithArgExists(daemon.run_dir() + "/")) << "the mute guest's QEMU was not killed";

  auto list = daemon.Cli({"ls", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto vms = nlohmann::json::parse(list.out, nullptr, false);
  ASSERT_TRUE(vms.is_array() || vms.is_object()) << list.out;
  const nlohmann::json& entries = vms.is_array() ? vms : vms["vms"];
  ASSERT_EQ(entries.size(), 1u) << list.out;
  EXPECT_EQ(entries[0]["state"], "failed");
  EXPECT_NE(entries[0].value("reason", "").find("did not answer"), std::string::npos) << list.out;

  EXPECT_EQ(daemon.Cli({"rm", entries[0]["id"].get<std::string>()}).exit_code, 0);
}

}  // namespace
}  // namespace agentvm::testing
