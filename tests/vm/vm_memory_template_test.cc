// Copy-on-write memory templates (docs/snapshots.md, "Memory templates")
// through agentvmd with real guests: clones of one template run side by
// side with memories of their own, nobody can change the template, it
// survives a daemon restart, and a damaged one is never restored.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "supervisor/file_digest.h"
#include "tests/support/daemon.h"

namespace agentvm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kClones = 5;

json Create(const Daemon& daemon, const std::string& boot) {
  auto [status, body] = daemon.Http("POST", "/v1/vms", json{{"boot", boot}}.dump());
  EXPECT_EQ(status, 201) << body << "\n" << daemon.Log();
  return json::parse(body, nullptr, false);
}

CommandResult Sh(const Daemon& daemon, const std::string& id, const std::string& script) {
  return daemon.Cli({"exec", id, "--", "sh", "-c", script});
}

json Meta(const fs::path& golden) { return json::parse(std::ifstream(golden / "meta.json"), nullptr, false); }

// The fd through which QEMU `pid` maps the template: "/proc/<pid>/fd/<n>".
std::string TemplateFd(int pid) {
  const fs::path fds = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fds, ec)) {
    if (fs::read_symlink(entry.path(), ec).string().find("memfd:agentvm-memory-template") != std::string::npos) {
      return entry.path().string();
    }
  }
  return "";
}

// Its real uid, from /proc/<pid>/status ("Uid:\treal\teffective...").
uid_t UidOf(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("Uid:")) return static_cast<uid_t>(std::stoul(line.substr(4)));
  }
  ADD_FAILURE() << "no Uid in /proc/" << pid << "/status";
  return 0;
}

// In a child running as `uid`/`gid` with no capabilities (as the clone's
// QEMU runs): opens the template the way QEMU does (by path, read-write)
// and tries to change it by write, by a shared writable mapping and by
// punching a hole. Returns what it managed, "" if nothing.
std::string TryToChangeAs(uid_t uid, int template_fd) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    std::string done;
    if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) done = "could not drop to the uid";
    const std::string path = "/proc/self/fd/" + std::to_string(template_fd);
    const int fd = ::open(path.c_str(), O_RDWR);
    if (fd >= 0) {
      if (::pwrite(fd, "pwned", 5, 4096) >= 0) done += "write ";
      void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (map != MAP_FAILED) done += "shared-mapping ";
      if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0) done += "punch-hole ";
      if (::ftruncate(fd, 4096) == 0) done += "truncate ";
    }
    (void)!::write(pipe_fds[1], done.data(), done.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string got;
  char buffer[256];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) got.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  ::waitpid(child, nullptr, 0);
  return got;
}

// Each clone's memory: a tmpfs file of 4 MiB of its own id, and its checksum.
constexpr char kWriteOwn[] =
    "mkdir -p /mnt/mem && mount -t tmpfs tmpfs /mnt/mem && "
    "yes \"$(hostname)\" | head -c 4194304 > /mnt/mem/own && md5sum < /mnt/mem/own";
constexpr char kReadOwn[] = "md5sum < /mnt/mem/own; head -c 15 /mnt/mem/own; echo; grep -vc \"^$(hostname)$\" /mnt/mem/own";

TEST(VmMemoryTemplateTest, ClonesShareOneSealedTemplateThatSurvivesARestartAndIsNeverRestoredDamaged) {
  Daemon daemon({.golden_snapshots = true});

  // The first restore builds the template: devices in `state`, RAM in `memory`.
  std::vector<json> clones = {Create(daemon, "restore")};
  const fs::path golden = daemon.GoldenSnapshotDir(10s);
  ASSERT_FALSE(golden.empty());
  const json meta = Meta(golden);
  EXPECT_GT(meta.value("memory_size", 0u), 0u) << meta.dump();
  EXPECT_LT(meta.value("state_size", 0u), 4u << 20) << "the state should hold devices only: " << meta.dump();
  struct stat memory_file {};
  ASSERT_EQ(::stat((golden / "memory").c_str(), &memory_file), 0);
  EXPECT_LT(static_cast<std::uint64_t>(memory_file.st_blocks) * 512, memory_file.st_size)
      << "untouched guest RAM should stay holes";

  for (int i = 1; i < kClones; ++i) clones.push_back(Create(daemon, "restore"));
  std::vector<std::string> sums;
  for (const json& clone : clones) {
    EXPECT_EQ(clone.value("boot", ""), "restore") << clone.dump();
    EXPECT_EQ(clone.value("restore_error", ""), "") << clone.dump();
    auto wrote = Sh(daemon, clone.value("id", ""), kWriteOwn);
    EXPECT_EQ(wrote.exit_code, 0) << wrote.err;
    sums.push_back(wrote.out);
  }
  for (std::size_t i = 0; i < clones.size(); ++i) {
    const std::string id = clones[i].value("id", "");
    auto read = Sh(daemon, id, kReadOwn);
    // Its own sum, its own id at the start, and no line of anyone else's.
    EXPECT_EQ(read.out, sums[i] + id + "\n0\n") << id << ": " << read.err;
  }
  for (std::size_t i = 1; i < sums.size(); ++i) EXPECT_NE(sums[i], sums[0]);

  // The template: mapped by every clone, unchanged by what they wrote, and
  // refused to a process with a clone's credentials, and to root.
  const int pid = clones[0].value("pid", 0);
  ASSERT_GT(pid, 0) << clones[0].dump();
  const std::string template_path = TemplateFd(pid);
  ASSERT_FALSE(template_path.empty()) << "clone " << pid << " does not map the template";
  auto digest = DigestFile(template_path);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(digest->checksum, meta.value("memory_checksum", "")) << "a clone changed the template";
  UniqueFd handle(::open(template_path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(handle);
  const uid_t clone_uid = UidOf(pid);
  EXPECT_NE(clone_uid, 0u) << "the clone's QEMU should run jailed";
  EXPECT_EQ(TryToChangeAs(clone_uid, handle.get()), "");
  EXPECT_EQ(TryToChangeAs(0, handle.get()), "");
  handle.reset();
  // The proc its jail mounted for that path shows its own process only.
  const std::string jail_proc = "/proc/" + std::to_string(pid) + "/root/proc";
  std::vector<std::string> in_proc;
  for (const auto& entry : fs::directory_iterator(jail_proc)) in_proc.push_back(entry.path().filename().string());
  EXPECT_NE(std::find(in_proc.begin(), in_proc.end(), "1"), in_proc.end());
  for (const char* hidden : {"sys", "kcore", "2", "sysrq-trigger", "meminfo"}) {
    EXPECT_EQ(std::find(in_proc.begin(), in_proc.end(), hidden), in_proc.end()) << "/proc/" << hidden << " in the jail";
  }

  // A daemon restart: the clones are adopted with their memories, and the
  // next restore loads the template anew from its file.
  daemon.CrashAndRestart();
  for (const json& clone : clones) {
    EXPECT_EQ(daemon.WaitSettled(clone.value("id", "")).value("state", ""), "running");
  }
  auto read = Sh(daemon, clones[1].value("id", ""), kReadOwn);
  EXPECT_EQ(read.out, sums[1] + clones[1].value("id", "") + "\n0\n") << read.err << daemon.Log();
  const json after_restart = Create(daemon, "restore");
  EXPECT_EQ(after_restart.value("boot", ""), "restore") << after_restart.dump();
  EXPECT_EQ(after_restart.value("restore_error", ""), "");
  EXPECT_EQ(Sh(daemon, after_restart.value("id", ""), "true").exit_code, 0);
  clones.push_back(after_restart);

  // A flipped byte in the RAM file: never restored; a cold boot says why.
  FlipByteAt(golden / "memory", meta.value("memory_size", 0u) / 3);
  const json after_flip = Create(daemon, "auto");
  EXPECT_EQ(after_flip.value("state", ""), "running");
  EXPECT_EQ(after_flip.value("boot", ""), "cold") << after_flip.dump();
  EXPECT_NE(after_flip.value("restore_error", "").find("memory checksum"), std::string::npos) << after_flip.dump();
  EXPECT_EQ(Sh(daemon, after_flip.value("id", ""), "true").exit_code, 0);
  clones.push_back(after_flip);

  for (const json& clone : clones) {
    auto removed = daemon.Cli({"rm", "-f", clone.value("id", "")});
    EXPECT_EQ(removed.exit_code, 0) << removed.err;
  }
}

}  // namespace
}  // namespace agentvm::testing
