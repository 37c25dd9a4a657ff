// The golden snapshots on disk, under <state-dir>/golden/: one directory per
// (image, profile), each holding
//   state        the migration stream of a booted, agent-ready, paused VM
//   disk.qcow2   the disk that VM ran on, frozen (mode 0444): the read-only
//                backing of every clone's fresh overlay, itself backed by the
//                image's rootfs.qcow2
//   memory       with memory templates (memory_templates: cow): the VM's
//                RAM, sparse, 0444; the state then holds devices only
//   meta.json    what made it (QEMU version, command-line hash, image
//                identity) and the size and XXH64 checksum of state and memory
// A snapshot that no longer matches what the daemon would run, or whose
// state fails its checksum, is removed when found, so the caller rebuilds it
// instead of restoring something incompatible.
//
// Crash safety: a snapshot is written into a ".tmp-*" directory and renamed
// into place only when complete; leftovers of a crash are removed by
// RemoveLeftovers() (at startup) and by the next Begin() of the same key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "supervisor/file_digest.h"
#include "supervisor/host_facts.h"
#include "supervisor/image_store.h"
#include "supervisor/memory_template.h"
#include "supervisor/qemu_command_line.h"

namespace agentvm {

// 2: memory templates (memory_size, memory_checksum).
inline constexpr int kGoldenFormatVersion = 2;

// What a saved VM and the VM restoring its state must share. Anything else
// that must match (QEMU, devices, image) is checked through GoldenMeta.
struct GoldenKey {
  std::string image;
  int cpus = 1;
  int memory_mib = 256;
  ChannelKind channel = ChannelKind::kVirtioSerial;
  bool has_nic = false;  // network modes with a NIC vs `isolated`
  // For VMs with mounts: the golden VM has the root ports their virtiofs
  // devices are hot-plugged into. Only they pay for the ports (about 30 ms
  // more per restore under TCG), so other VMs restore from a key without.
  bool hotplug_ports = false;

  // "tiny-1c-256m-serial-nonic-<8 hex>": safe as one path component whatever
  // the image name; the hash keeps keys distinct after sanitizing.
  std::string DirName() const;
  bool operator==(const GoldenKey&) const = default;
};

struct GoldenMeta {
  int format_version = kGoldenFormatVersion;
  std::string qemu_version;       // QemuVersion()
  std::string command_line_hash;  // CommandLineHash()
  std::string image_identity;     // ImageIdentity()
  std::uint64_t state_size = 0;   // filled in by Commit()
  std::string state_checksum;     // filled in by Commit()
  // The memory file's, filled in by Commit(); 0 and empty without one.
  std::uint64_t memory_size = 0;
  std::string memory_checksum;
  std::int64_t created_at = 0;    // unix seconds; filled in by Commit()

  nlohmann::json ToJson() const;
  static Result<GoldenMeta> FromJson(const nlohmann::json& json);
};

struct GoldenSnapshot {
  GoldenKey key;
  std::filesystem::path dir;
  std::filesystem::path state_file;  // open O_RDONLY, hand to LoadState
  std::filesystem::path disk;        // frozen_image of every clone
  GoldenMeta meta;
  // The memory file, verified and sealed, when the snapshot has one: each
  // clone maps it copy-on-write (memory_template.h).
  std::shared_ptr<const MemoryTemplate> memory;
};

class GoldenSnapshotStore {
 public:
  // `root` is usually <state-dir>/golden; created on first Begin().
  explicit GoldenSnapshotStore(std::filesystem::path root);

  // State shared with Writers, which may outlive the store.
  struct Shared {
    std::map<std::string, std::string> saving;    // DirName() -> its Writer's temp dir name
    std::map<std::string, std::string> verified;  // DirName() -> stamp of a checksummed state
    // DirName() -> the loaded memory template and the stamp of its file.
    struct LoadedMemory {
      std::string stamp;
      std::shared_ptr<const MemoryTemplate> memory;
    };
    std::map<std::string, LoadedMemory> memories;
  };

  // A golden snapshot being written. Destroying it uncommitted removes its
  // temporary directory.
  class Writer {
   public:
    Writer(Writer&& other) noexcept;
    Writer& operator=(Writer&&) = delete;
    ~Writer();

    const std::filesystem::path& dir() const { return tmp_dir_; }
    // Where SaveState's file goes, and where the caller moves the saved VM's
    // disk (after that QEMU has exited).
    std::filesystem::path state_file() const { return tmp_dir_ / "state"; }
    std::filesystem::path disk() const { return tmp_dir_ / "disk.qcow2"; }
    // Where the VM's RAM goes, for a memory template (WriteMemory).
    std::filesystem::path memory_file() const { return tmp_dir_ / "memory"; }
    // Writes the saved VM's RAM (a memfd) to memory_file(), keeping its
    // digest for Commit, which then need not read 256 MiB again.
    Result<void> WriteMemory(int ram);

    // Checksums the state (the memory's digest comes from WriteMemory), makes
    // them and the disk read-only, writes meta.json
    // (the caller fills qemu_version, command_line_hash, image_identity),
    // syncs, and renames the directory into place, replacing any older
    // snapshot of the key. At most once.
    Result<GoldenSnapshot> Commit(GoldenMeta meta);

   private:
    friend class GoldenSnapshotStore;
    Writer(std::filesystem::path root, std::shared_ptr<Shared> shared, GoldenKey key,
           std::filesystem::path tmp_dir);

    std::filesystem::path root_;
    std::shared_ptr<Shared> shared_;
    GoldenKey key_;
    std::filesystem::path tmp_dir_;
    std::optional<FileDigest> memory_;  // set by WriteMemory
    bool done_ = false;
  };

  // The snapshot of `key` if one exists and matches `expected` (format,
  // qemu_version, command_line_hash, image_identity) and its state (and
  // memory) has the recorded size and checksum; otherwise nullopt, after
  // removing a stale or damaged entry with a log line saying why. Each
  // checksum is read in full the first time an entry is found, and again
  // whenever its file changes; the memory is loaded into its sealed memfd in
  // the same pass, and that memfd is reused while the file stays the same.
  // `rejected`, if given, gets why an entry that was there was removed.
  Result<std::optional<GoldenSnapshot>> Find(const GoldenKey& key, const GoldenMeta& expected,
                                             std::string* rejected = nullptr);

  // A fresh temporary directory to save `key` into. kConflict while another
  // Writer of this store saves the same key.
  Result<Writer> Begin(const GoldenKey& key);

  // Removes the snapshot of `key`, if any. Clones running on its disk keep
  // their open file.
  Result<void> Remove(const GoldenKey& key);

  // Removes temporary directories that no Writer of this store owns: what a
  // crash mid-save or mid-removal left. Returns how many.
  Result<int> RemoveLeftovers();

  const std::filesystem::path& root() const { return root_; }

 private:
  Result<void> RemoveDir(const std::filesystem::path& dir);
  // The snapshot `name`'s memory file as a sealed template: the one loaded
  // before while the file is unchanged, else loaded (and verified) now.
  Result<std::shared_ptr<const MemoryTemplate>> LoadMemory(const std::string& name,
                                                           const std::filesystem::path& file, const GoldenMeta& meta);
  // Drops what was verified or loaded of snapshot `name`.
  void Forget(const std::string& name);

  std::filesystem::path root_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace agentvm
