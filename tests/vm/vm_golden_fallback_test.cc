// A golden snapshot that is damaged, or that QEMU refuses to load, never
// costs the user a VM: the create falls back to a cold boot, says why, and
// the snapshot is rebuilt. Through agentvmd with real guests.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "supervisor/golden_snapshot_store.h"
#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

json Create(const Daemon& daemon, const std::string& boot) {
  auto [status, body] = daemon.Http("POST", "/v1/vms", json{{"boot", boot}}.dump());
  EXPECT_EQ(status, 201) << body << "\n" << daemon.Log();
  return json::parse(body, nullptr, false);
}

void Remove(const Daemon& daemon, const json& vm) {
  auto removed = daemon.Cli({"rm", "-f", vm.value("id", "")});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
}

void MakeWritable(const fs::path& file) { ::chmod(file.c_str(), 0644); }

TEST(VmGoldenFallbackTest, DamagedOrUnloadableStateFallsBackToAColdBoot) {
  // The full-copy path (memory_templates: copy), whose state holds guest
  // RAM; vm_memory_template_test.cc covers the templates' own file.
  Daemon daemon({.extra_args = {"--memory-templates", "copy"}, .golden_snapshots = true});

  // Builds the golden snapshot (one cold boot), then restores from it.
  const json restored = Create(daemon, "restore");
  EXPECT_EQ(restored.value("boot", ""), "restore") << restored.dump();
  EXPECT_EQ(restored.value("restore_error", ""), "");
  Remove(daemon, restored);
  fs::path golden = daemon.GoldenSnapshotDir(10s);
  ASSERT_FALSE(golden.empty());

  // 1. A flipped byte in the middle of the memory state: QEMU could not tell
  //    (RAM pages travel raw), the checksum does.
  FlipByteAt(golden / "state", fs::file_size(golden / "state") / 2);
  const json after_flip = Create(daemon, "auto");
  EXPECT_EQ(after_flip.value("state", ""), "running");
  EXPECT_EQ(after_flip.value("boot", ""), "cold") << after_flip.dump();
  EXPECT_NE(after_flip.value("restore_error", "").find("checksum"), std::string::npos) << after_flip.dump();
  EXPECT_EQ(daemon.Cli({"exec", after_flip.value("id", ""), "--", "true"}).exit_code, 0);
  Remove(daemon, after_flip);

  // The daemon rebuilt it in the background.
  golden = daemon.GoldenSnapshotDir(180s);
  ASSERT_FALSE(golden.empty());

  // 2. A state that passes every check of ours but that QEMU cannot load (cut
  //    in half, with size and checksum recorded to match): QEMU exits, the
  //    daemon cold-boots instead and throws the snapshot away.
  {
    const fs::path state = golden / "state";
    MakeWritable(state);
    fs::resize_file(state, fs::file_size(state) / 2);
    auto digest = DigestFile(state);
    ASSERT_TRUE(digest) << digest.error().message;
    const fs::path meta_file = golden / "meta.json";
    MakeWritable(meta_file);
    json meta = json::parse(std::ifstream(meta_file), nullptr, false);
    meta["state_size"] = digest->size;
    meta["state_checksum"] = digest->checksum;
    std::ofstream(meta_file, std::ios::trunc) << meta.dump(2);
  }
  const json after_cut = Create(daemon, "auto");
  EXPECT_EQ(after_cut.value("state", ""), "running");
  EXPECT_EQ(after_cut.value("boot", ""), "cold") << after_cut.dump();
  EXPECT_NE(after_cut.value("restore_error", "").find("load golden state"), std::string::npos)
      << after_cut.dump();
  EXPECT_EQ(daemon.Cli({"exec", after_cut.value("id", ""), "--", "true"}).exit_code, 0);
  EXPECT_NE(daemon.Log().find("golden snapshot discarded"), std::string::npos);
  Remove(daemon, after_cut);
}

}  // namespace
}  // namespace agentvm::testing
