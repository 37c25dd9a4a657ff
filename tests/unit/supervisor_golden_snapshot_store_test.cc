// The golden snapshot store on a real temporary directory: commit and find,
// every kind of mismatch and damage removing the entry, crash leftovers, and
// what the command-line hash does and does not notice.
#include "supervisor/golden_snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteAll(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Xxh64Test, MatchesPublishedVectors) {
  EXPECT_EQ(Xxh64Of(""), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(Xxh64Of("a"), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(Xxh64Of("abc"), 0x44BC2CF5AD770999ULL);
  EXPECT_EQ(Xxh64Of("hello"), 0x26C7827D889F6DA3ULL);
  EXPECT_EQ(Xxh64Of("Nobody inspects the spammish repetition"), 0xFBCEA83C8A378BF1ULL);
  EXPECT_EQ(Hex64(0xEF46DB3751D8E999ULL), "ef46db3751d8e999");
  EXPECT_EQ(Hex64(1), "0000000000000001");
}

TEST(Xxh64Test, PiecewiseEqualsWhole) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 7 + i / 13);
  const std::uint64_t whole = Xxh64Of(data);
  for (std::size_t step : {1u, 3u, 31u, 32u, 33u, 64u, 999u}) {
    Xxh64 hash;
    for (std::size_t at = 0; at < data.size(); at += step) hash.Update(std::string_view(data).substr(at, step));
    EXPECT_EQ(hash.Digest(), whole) << "step " << step;
  }
  std::string flipped = data;
  flipped[500] ^= 1;
  EXPECT_NE(Xxh64Of(flipped), whole);
}

GoldenKey TinyKey() { return GoldenKey{.image = "tiny", .cpus = 1, .memory_mib = 256}; }

TEST(GoldenKeyTest, DirNameIsOnePathComponentAndDistinctPerKey) {
  EXPECT_TRUE(TinyKey().DirName().starts_with("tiny-1c-256m-serial-nonic-")) << TinyKey().DirName();
  const std::vector<std::string> hostile = {"../../etc", "a/b", ".hidden", "", "x y\n", "..", std::string(300, 'z')};
  for (const auto& image : hostile) {
    GoldenKey key = TinyKey();
    key.image = image;
    const std::string name = key.DirName();
    EXPECT_EQ(name.find('/'), std::string::npos) << name;
    EXPECT_NE(name[0], '.') << name;
    EXPECT_LT(name.size(), 120u) << name;
    EXPECT_EQ(fs::path(name).filename().string(), name);
  }
  std::vector<GoldenKey> keys(6, TinyKey());
  keys[1].cpus = 2;
  keys[2].memory_mib = 512;
  keys[3].channel = ChannelKind::kVsock;
  keys[4].has_nic = true;
  keys[5].image = "tin/y";
  GoldenKey underscore = TinyKey();
  underscore.image = "tin_y";  // sanitizes to the same text as "tin/y"
  keys.push_back(underscore);
  GoldenKey ports = TinyKey();
  ports.hotplug_ports = true;  // for VMs with mounts
  keys.push_back(ports);
  std::set<std::string> names;
  for (const auto& key : keys) names.insert(key.DirName());
  EXPECT_EQ(names.size(), keys.size());
  EXPECT_TRUE(ports.DirName().starts_with("tiny-1c-256m-serial-nonic-ports-")) << ports.DirName();
}

class GoldenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("agentvm-golden-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  GoldenMeta Expected() const {
    return GoldenMeta{.qemu_version = "QEMU emulator version 7.2.22", .command_line_hash = "c0ffee",
                      .image_identity = "1d"};
  }

  // A complete save of `key`: what SaveState and the frozen overlay leave,
  // and with `memory` what a memory template's source leaves.
  GoldenSnapshot Save(GoldenSnapshotStore& store, const GoldenKey& key, const std::string& state,
                      const std::optional<std::string>& memory = std::nullopt) {
    auto writer = store.Begin(key);
    EXPECT_TRUE(writer) << writer.error().message;
    WriteAll(writer->state_file(), state);
    WriteAll(writer->disk(), "QFI\xfb disk");
    if (memory) {
      // As the builder does: the saved VM's RAM is a memfd.
      auto ram = GuestRamMemfd(memory->size());
      EXPECT_TRUE(ram) << ram.error().message;
      EXPECT_EQ(::pwrite(ram->get(), memory->data(), memory->size(), 0), static_cast<ssize_t>(memory->size()));
      auto written = writer->WriteMemory(ram->get());
      EXPECT_TRUE(written) << written.error().message;
    }
    auto committed = writer->Commit(Expected());
    EXPECT_TRUE(committed) << committed.error().message;
    return *committed;
  }

  std::optional<GoldenSnapshot> FindFresh(const GoldenMeta& expected) {
    GoldenSnapshotStore store(root_);  // as after a daemon restart: nothing cached
    auto found = store.Find(TinyKey(), expected);
    EXPECT_TRUE(found) << found.error().message;
    return found ? *found : std::nullopt;
  }

  fs::path root_;
  const std::string state_ = std::string(100'000, 's') + "QEVM-ish tail";
};

TEST_F(GoldenStoreTest, CommittedSnapshotIsFoundFrozenAndComplete) {
  GoldenSnapshotStore store(root_);
  auto missing = store.Find(TinyKey(), Expected());
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);

  const GoldenSnapshot saved = Save(store, TinyKey(), state_);
  EXPECT_EQ(saved.dir, root_ / TinyKey().DirName());
  EXPECT_EQ(Entries(root_), std::vector<std::string>{TinyKey().DirName()}) << "temporary directory left behind";
  EXPECT_EQ(Entries(saved.dir), (std::vector<std::string>{"disk.qcow2", "meta.json", "state"}));
  for (const fs::path& file : {saved.state_file, saved.disk}) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0444u) << file;
  }
  const auto meta = nlohmann::json::parse(ReadAll(saved.dir / "meta.json"));
  EXPECT_EQ(meta["format_version"], kGoldenFormatVersion);
  EXPECT_EQ(meta["qemu_version"], "QEMU emulator version 7.2.22");
  EXPECT_EQ(meta["state_size"], state_.size());
  EXPECT_EQ(meta["state_checksum"], "xxh64:" + Hex64(Xxh64Of(state_)));
  EXPECT_GT(meta["created_at"].get<std::int64_t>(), 1'600'000'000);

  for (GoldenSnapshotStore* finder : {&store, new GoldenSnapshotStore(root_)}) {
    auto found = finder->Find(TinyKey(), Expected());
    ASSERT_TRUE(found) << found.error().message;
    ASSERT_TRUE(*found);
    EXPECT_EQ((*found)->state_file, saved.state_file);
    EXPECT_EQ((*found)->disk, root_ / TinyKey().DirName() / "disk.qcow2");
    EXPECT_EQ((*found)->meta.state_checksum, saved.meta.state_checksum);
    if (finder != &store) delete finder;
  }
  GoldenKey other = TinyKey();
  other.has_nic = true;
  auto not_this_profile = store.Find(other, Expected());
  ASSERT_TRUE(not_this_profile);
  EXPECT_FALSE(*not_this_profile);
}

TEST_F(GoldenStoreTest, AnyMismatchRemovesTheSnapshot) {
  std::vector<GoldenMeta> mismatches(3, Expected());
  mismatches[0].qemu_version = "QEMU emulator version 8.0.0";
  mismatches[1].command_line_hash = "decaf";
  mismatches[2].image_identity = "2e";
  for (const auto& expected : mismatches) {
    GoldenSnapshotStore store(root_);
    Save(store, TinyKey(), state_);
    auto found = store.Find(TinyKey(), expected);
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_FALSE(*found);
    EXPECT_TRUE(Entries(root_).empty()) << "stale snapshot kept";
  }
}

TEST_F(GoldenStoreTest, CorruptedOrTruncatedStateIsRemoved) {
  {
    GoldenSnapshotStore store(root_);
    const GoldenSnapshot saved = Save(store, TinyKey(), state_);
    std::string flipped = state_;
    flipped[flipped.size() / 2] ^= 0x20;
    fs::permissions(saved.state_file, fs::perms::owner_write, fs::perm_options::add);
    WriteAll(saved.state_file, flipped);
  }
  EXPECT_FALSE(FindFresh(Expected()));
  EXPECT_TRUE(Entries(root_).empty());

  {
    GoldenSnapshotStore store(root_);
    const GoldenSnapshot saved = Save(store, TinyKey(), state_);
    fs::resize_file(saved.state_file, state_.size() / 2);
    auto found = store.Find(TinyKey(), Expected());  // size is checked even when cached
    ASSERT_TRUE(found);
    EXPECT_FALSE(*found);
  }
  EXPECT_TRUE(Entries(root_).empty());
}

TEST_F(GoldenStoreTest, MissingPiecesRemoveTheSnapshot) {
  for (const char* piece : {"meta.json", "disk.qcow2", "state"}) {
    GoldenSnapshotStore store(root_);
    const GoldenSnapshot saved = Save(store, TinyKey(), state_);
    fs::remove(saved.dir / piece);
    EXPECT_FALSE(FindFresh(Expected())) << piece;
    EXPECT_TRUE(Entries(root_).empty()) << piece;
  }
  GoldenSnapshotStore store(root_);
  const GoldenSnapshot saved = Save(store, TinyKey(), state_);
  fs::permissions(saved.dir / "meta.json", fs::perms::owner_write, fs::perm_options::add);
  WriteAll(saved.dir / "meta.json", "{not json");
  EXPECT_FALSE(FindFresh(Expected()));
  EXPECT_TRUE(Entries(root_).empty());
}

TEST_F(GoldenStoreTest, CommitReplacesAnOlderSnapshot) {
  GoldenSnapshotStore store(root_);
  Save(store, TinyKey(), state_);
  const GoldenSnapshot newer = Save(store, TinyKey(), "newer state");
  EXPECT_EQ(Entries(root_), std::vector<std::string>{TinyKey().DirName()});
  EXPECT_EQ(ReadAll(newer.state_file), "newer state");
  auto found = FindFresh(Expected());
  ASSERT_TRUE(found);
  EXPECT_EQ(found->meta.state_size, 11u);
}

TEST_F(GoldenStoreTest, AMemoryTemplateIsFoundLoadedAndSealedOncePerFile) {
  GoldenSnapshotStore store(root_);
  const GoldenSnapshot committed =
      Save(store, TinyKey(), "devices only", std::string(8192, '\0') + "guest RAM page");
  EXPECT_EQ(committed.meta.memory_size, 8192u + 14);
  EXPECT_TRUE(committed.meta.memory_checksum.starts_with("xxh64:"));
  const fs::path memory = committed.dir / "memory";
  struct stat st {};
  ASSERT_EQ(::stat(memory.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);

  auto found = store.Find(TinyKey(), Expected());
  ASSERT_TRUE(found && *found);
  ASSERT_TRUE((*found)->memory);
  EXPECT_EQ((*found)->memory->size(), 8192u + 14);
  EXPECT_EQ(::fcntl((*found)->memory->fd(), F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
  auto again = store.Find(TinyKey(), Expected());
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->memory, (*found)->memory) << "the same file is loaded once";

  // Damage after it was loaded is still caught: the file changed.
  fs::permissions(memory, fs::perms::owner_write, fs::perm_options::add);
  {
    std::fstream out(memory, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(8192);
    out << "X";
  }
  std::string rejected;
  auto damaged = store.Find(TinyKey(), Expected(), &rejected);
  ASSERT_TRUE(damaged);
  EXPECT_FALSE(*damaged);
  EXPECT_NE(rejected.find("memory checksum"), std::string::npos) << rejected;
  EXPECT_TRUE(Entries(root_).empty());
  // A clone launched before keeps its template: the memfd outlives the files.
  EXPECT_EQ(::fcntl((*found)->memory->fd(), F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
}

TEST_F(GoldenStoreTest, AMissingMemoryFileRemovesTheSnapshot) {
  GoldenSnapshotStore store(root_);
  fs::remove(Save(store, TinyKey(), "devices only", "guest RAM").dir / "memory");
  std::string rejected;
  GoldenSnapshotStore fresh(root_);
  auto found = fresh.Find(TinyKey(), Expected(), &rejected);
  ASSERT_TRUE(found);
  EXPECT_FALSE(*found);
  EXPECT_EQ(rejected, "no memory file");
}

TEST_F(GoldenStoreTest, AbandonedOrCrashedSavesLeaveNothing) {
  GoldenSnapshotStore store(root_);
  {
    auto writer = store.Begin(TinyKey());
    ASSERT_TRUE(writer);
    WriteAll(writer->state_file(), "half a state");
    EXPECT_EQ(Entries(root_).size(), 1u);
  }  // dropped without Commit: a failed save
  EXPECT_TRUE(Entries(root_).empty());

  // A crash: the temporary directory of another process stays behind.
  const fs::path crashed = root_ / (".tmp-" + TinyKey().DirName() + "-99999-0");
  fs::create_directories(crashed);
  WriteAll(crashed / "state", "half");
  fs::create_directories(root_ / ".trash-old-99999-1");
  GoldenKey other = TinyKey();
  other.cpus = 4;
  auto active = store.Begin(other);  // in progress: must survive the cleanup
  ASSERT_TRUE(active);
  auto removed = store.RemoveLeftovers();
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(Entries(root_), std::vector<std::string>{active->dir().filename().string()});

  // The next save of a key also clears that key's leftovers.
  fs::create_directories(crashed);
  auto writer = store.Begin(TinyKey());
  ASSERT_TRUE(writer);
  EXPECT_FALSE(fs::exists(crashed));
}

TEST_F(GoldenStoreTest, OneSaveAtATimePerKey) {
  GoldenSnapshotStore store(root_);
  auto first = store.Begin(TinyKey());
  ASSERT_TRUE(first);
  auto second = store.Begin(TinyKey());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
}

TEST_F(GoldenStoreTest, CommitNeedsAStateAndADisk) {
  GoldenSnapshotStore store(root_);
  auto writer = store.Begin(TinyKey());
  ASSERT_TRUE(writer);
  WriteAll(writer->state_file(), "state");
  auto committed = writer->Commit(Expected());
  ASSERT_FALSE(committed);
  EXPECT_NE(committed.error().message.find("disk.qcow2"), std::string::npos);
  EXPECT_FALSE(fs::exists(root_ / TinyKey().DirName()));
}

QemuLaunchSpec CloneSpec(const std::string& id) {
  return QemuLaunchSpec{
      .vm_id = id,
      .kernel = "/images/tiny/vmlinuz",
      .initrd = "/images/tiny/initrd.img",
      .kernel_args = "console=ttyS0 root=/dev/vda rw agentvm.channel=serial agentvm.hostname=" + id,
      .base_image = "/images/tiny/rootfs.qcow2",
      .overlay = "/state/vms/" + id + "/overlay.qcow2",
      .qmp_fd = 5,
      .console_log = "/run/vms/" + id + "/console.log",
      .pidfile = "/run/vms/" + id + "/qemu.pid",
      .agent_fd = 6,
      .tap_fd = 7,
      .mac = "02:00:00:00:00:07",
  };
}

TEST(CommandLineHashTest, EqualForClonesOfOneProfile) {
  const QemuLaunchSpec saver = CloneSpec("vm-aaaa");
  QemuLaunchSpec restorer = CloneSpec("vm-bbbb");
  restorer.frozen_image = "/state/golden/x/disk.qcow2";
  restorer.incoming_defer = true;
  restorer.tap_fd = 12;
  restorer.mac = "02:00:00:00:00:99";
  restorer.kernel_args += " agentvm.ip=10.0.0.5/24";
  restorer.kernel = "/elsewhere/vmlinuz";
  EXPECT_EQ(CommandLineHash(saver), CommandLineHash(restorer));
  EXPECT_EQ(CommandLineHash(saver), CommandLineHash(CloneSpec("vm-aaaa")));  // stable
  EXPECT_EQ(CommandLineHash(saver).size(), 16u);

  QemuLaunchSpec vsock_a = saver, vsock_b = restorer;
  vsock_a.channel = vsock_b.channel = ChannelKind::kVsock;
  vsock_a.guest_cid = 3;
  vsock_b.guest_cid = 4711;
  EXPECT_EQ(CommandLineHash(vsock_a), CommandLineHash(vsock_b));

  // A memory template's source maps its RAM shared, its clones private,
  // each through its own fd: one profile all the same.
  QemuLaunchSpec source = saver, clone = restorer;
  source.memory = GuestMemory::kTemplateSource;
  source.memory_fd = 9;
  clone.memory = GuestMemory::kTemplateClone;
  clone.memory_fd = 14;
  EXPECT_EQ(CommandLineHash(source), CommandLineHash(clone));
}

TEST(CommandLineHashTest, DiffersForAnyRealChange) {
  const QemuLaunchSpec base = CloneSpec("vm-aaaa");
  std::vector<QemuLaunchSpec> changed(9, base);
  changed[0].cpus = 2;
  changed[1].memory_mib = 512;
  changed[2].accel = Accel::kKvm;
  changed[3].qemu_binary = "/opt/qemu/bin/qemu-system-x86_64";
  changed[4].channel = ChannelKind::kVsock;
  changed[5].tap_fd = -1;
  changed[6].kernel_args = "console=ttyS0 root=/dev/vda ro agentvm.channel=serial";
  changed[7].kernel_args += " mitigations=off";
  changed[8].memory = GuestMemory::kTemplateSource;  // a template's state holds no RAM
  std::set<std::string> hashes = {CommandLineHash(base)};
  for (const auto& spec : changed) hashes.insert(CommandLineHash(spec));
  EXPECT_EQ(hashes.size(), changed.size() + 1);
}

TEST(ImageIdentityTest, FollowsTheImageFiles) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("agentvm-identity-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Image image{.name = "tiny", .kernel = dir / "vmlinuz", .initrd = dir / "initrd.img", .rootfs = dir / "rootfs.qcow2"};
  for (const auto& file : {image.kernel, image.initrd, image.rootfs}) WriteAll(file, "v1");
  auto first = ImageIdentity(image);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*ImageIdentity(image), *first);
  WriteAll(image.rootfs, "v2 rebuilt");
  auto second = ImageIdentity(image);
  ASSERT_TRUE(second);
  EXPECT_NE(*second, *first);
  fs::remove(image.initrd);
  EXPECT_FALSE(ImageIdentity(image));
  fs::remove_all(dir);
}

TEST(QemuVersionTest, FirstLineOfVersionOutput) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("agentvm-qemuver-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path fake = dir / "qemu-fake";
  WriteAll(fake, "#!/bin/sh\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)'\necho Copyright\n");
  fs::permissions(fake, fs::perms::owner_all);
  auto version = QemuVersion(fake.string());
  ASSERT_TRUE(version) << version.error().message;
  EXPECT_EQ(*version, "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)");
  EXPECT_FALSE(QemuVersion((dir / "missing").string()));
  WriteAll(fake, "#!/bin/sh\nexit 3\n");
  EXPECT_FALSE(QemuVersion(fake.string()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace agentvm
