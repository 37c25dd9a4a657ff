#include "supervisor/golden_snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "common/logging.h"
#include "common/unique_fd.h"

extern char** environ;

namespace agentvm {
namespace fs = std::filesystem;
namespace {

constexpr char kTmpPrefix[] = ".tmp-";
constexpr char kTrashPrefix[] = ".trash-";
constexpr char kStateFile[] = "state";
constexpr char kDiskFile[] = "disk.qcow2";
constexpr char kMemoryFile[] = "memory";
constexpr char kMetaFile[] = "meta.json";

std::shared_ptr<spdlog::logger> Log() { return Logger("golden"); }

// Unique among this process's temporary names; the pid separates processes.
std::string UniqueSuffix() {
  static std::atomic<std::uint64_t> counter{0};
  return fmt::format("{}-{}", ::getpid(), counter.fetch_add(1));
}

Result<void> SyncPath(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError("open " + path.string(), errno));
  if (::fsync(fd.get()) != 0) return Fail(ErrnoError("fsync " + path.string(), errno));
  return {};
}

Result<void> WriteWholeFile(const fs::path& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444));
  if (!fd) return Fail(ErrnoError("create " + path.string(), errno));
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("write " + path.string(), errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return Fail(ErrnoError("fsync " + path.string(), errno));
  return {};
}

// Identifies one version of a file cheaply, to skip re-checksumming it.
std::string FileStamp(const struct stat& st, const GoldenMeta& meta, const std::string& checksum) {
  return fmt::format("{}:{}:{}.{}:{}:{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                     meta.created_at, checksum);
}

std::string Sanitize(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 64)) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    out += safe ? c : '_';
  }
  // A leading '.' would look like a temporary directory (or be "." / "..").
  if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
  return out;
}

}  // namespace

// --- XXH64 ---

// --- keys and metadata ---

std::string GoldenKey::DirName() const {
  const std::string channel_name = channel == ChannelKind::kVsock ? "vsock" : "serial";
  // Keys without ports keep the names they had before ports existed.
  const std::string ports = hotplug_ports ? "-ports" : "";
  const std::string canonical = fmt::format("{}\n{}\n{}\n{}\n{}{}", image, cpus, memory_mib, channel_name,
                                            has_nic ? "nic" : "nonic", ports);
  return fmt::format("{}-{}c-{}m-{}-{}{}-{}", Sanitize(image), cpus, memory_mib, channel_name,
                     has_nic ? "nic" : "nonic", ports, Hex64(Xxh64Of(canonical)).substr(0, 8));
}

nlohmann::json GoldenMeta::ToJson() const {
  return {
      {"format_version", format_version},   {"qemu_version", qemu_version},
      {"command_line_hash", command_line_hash}, {"image_identity", image_identity},
      {"state_size", state_size},           {"state_checksum", state_checksum},
      {"memory_size", memory_size},         {"memory_checksum", memory_checksum},
      {"created_at", created_at},
  };
}

Result<GoldenMeta> GoldenMeta::FromJson(const nlohmann::json& json) {
  if (!json.is_object()) return Fail(ErrorCode::kInvalidArgument, "meta.json is not an object");
  try {
    GoldenMeta meta;
    meta.format_version = json.at("format_version").get<int>();
    meta.qemu_version = json.at("qemu_version").get<std::string>();
    meta.command_line_hash = json.at("command_line_hash").get<std::string>();
    meta.image_identity = json.at("image_identity").get<std::string>();
    meta.state_size = json.at("state_size").get<std::uint64_t>();
    meta.state_checksum = json.at("state_checksum").get<std::string>();
    meta.memory_size = json.at("memory_size").get<std::uint64_t>();
    meta.memory_checksum = json.at("memory_checksum").get<std::string>();
    meta.created_at = json.at("created_at").get<std::int64_t>();
    return meta;
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kInvalidArgument, std::string("meta.json: ") + e.what());
  }
}

// --- the store ---

GoldenSnapshotStore::GoldenSnapshotStore(fs::path root)
    : root_(std::move(root)), shared_(std::make_shared<Shared>()) {}

Result<void> GoldenSnapshotStore::RemoveDir(const fs::path& dir) {
  // Renamed first so that a crash halfway through never leaves a partial
  // snapshot under its real name.
  const fs::path trash = root_ / (kTrashPrefix + dir.filename().string() + "-" + UniqueSuffix());
  if (::rename(dir.c_str(), trash.c_str()) != 0) {
    if (errno == ENOENT) return {};
    return Fail(ErrnoError("rename " + dir.string(), errno));
  }
  std::error_code ec;
  fs::remove_all(trash, ec);
  if (ec) return Fail(ErrorCode::kInternal, "remove " + trash.string() + ": " + ec.message());
  return {};
}

Result<std::optional<GoldenSnapshot>> GoldenSnapshotStore::Find(const GoldenKey& key,
                                                                const GoldenMeta& expected,
                                                                std::string* rejected) {
  const std::string name = key.DirName();
  const fs::path dir = root_ / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    Forget(name);
    return std::optional<GoldenSnapshot>();
  }
  auto discard = [&](const std::string& why) -> Result<std::optional<GoldenSnapshot>> {
    Log()->warn("golden {}: discarded, will be rebuilt: {}", name, why);
    if (rejected) *rejected = why;
    Forget(name);
    if (auto removed = RemoveDir(dir); !removed) return Fail(removed.error().Wrap("discard golden " + name));
    return std::optional<GoldenSnapshot>();
  };

  std::ifstream in(dir / kMetaFile);
  if (!in) return discard("no meta.json");
  auto parsed = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto meta = GoldenMeta::FromJson(parsed);
  if (!meta) return discard(meta.error().message);
  auto differs = [](const char* what, const auto& saved, const auto& now) {
    return fmt::format("{} differs (saved with '{}', now '{}')", what, saved, now);
  };
  if (meta->format_version != kGoldenFormatVersion) {
    return discard(differs("format version", meta->format_version, kGoldenFormatVersion));
  }
  if (meta->qemu_version != expected.qemu_version) {
    return discard(differs("QEMU version", meta->qemu_version, expected.qemu_version));
  }
  if (meta->command_line_hash != expected.command_line_hash) {
    return discard(differs("QEMU command line", meta->command_line_hash, expected.command_line_hash));
  }
  if (meta->image_identity != expected.image_identity) {
    return discard(differs("image", meta->image_identity, expected.image_identity));
  }

  GoldenSnapshot snapshot{key, dir, dir / kStateFile, dir / kDiskFile, *meta};
  struct stat st {};
  if (::stat(snapshot.state_file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return discard("no state file");
  if (!fs::is_regular_file(snapshot.disk, ec)) return discard("no disk.qcow2");
  if (static_cast<std::uint64_t>(st.st_size) != meta->state_size) {
    return discard(fmt::format("state is {} bytes, {} recorded", st.st_size, meta->state_size));
  }
  const std::string stamp = FileStamp(st, *meta, meta->state_checksum);
  auto verified = shared_->verified.find(name);
  if (verified == shared_->verified.end() || verified->second != stamp) {
    const auto started = std::chrono::steady_clock::now();
    auto digest = DigestFile(snapshot.state_file);
    if (!digest) return discard(digest.error().message);
    if (digest->checksum != meta->state_checksum) {
      return discard(fmt::format("state checksum {} does not match the recorded {}", digest->checksum,
                                 meta->state_checksum));
    }
    shared_->verified[name] = stamp;
    Log()->debug("golden {}: state checksum verified in {} ms", name,
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                     .count());
  }
  if (!meta->memory_checksum.empty()) {
    auto memory = LoadMemory(name, dir / kMemoryFile, *meta);
    if (!memory) return discard(memory.error().message);
    snapshot.memory = std::move(*memory);
  }
  return std::optional<GoldenSnapshot>(std::move(snapshot));
}

Result<std::shared_ptr<const MemoryTemplate>> GoldenSnapshotStore::LoadMemory(const std::string& name,
                                                                              const fs::path& file,
                                                                              const GoldenMeta& meta) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return Fail(ErrorCode::kNotFound, "no memory file");
  const std::string stamp = FileStamp(st, meta, meta.memory_checksum);
  if (auto loaded = shared_->memories.find(name); loaded != shared_->memories.end() && loaded->second.stamp == stamp) {
    return loaded->second.memory;
  }
  shared_->memories.erase(name);
  const auto started = std::chrono::steady_clock::now();
  auto memory = LoadMemoryTemplate(file, meta.memory_size, meta.memory_checksum);
  if (!memory) return Fail(memory.error());
  shared_->memories[name] = {stamp, *memory};
  Log()->info("golden {}: memory template loaded and sealed in {} ms", name,
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  return *memory;
}

void GoldenSnapshotStore::Forget(const std::string& name) {
  shared_->verified.erase(name);
  shared_->memories.erase(name);
}

Result<GoldenSnapshotStore::Writer> GoldenSnapshotStore::Begin(const GoldenKey& key) {
  const std::string name = key.DirName();
  if (shared_->saving.contains(name)) {
    return Fail(ErrorCode::kConflict, "golden snapshot " + name + " is already being saved");
  }
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Fail(ErrorCode::kInternal, "create " + root_.string() + ": " + ec.message());

  // Leftovers of an earlier save of this key that never committed.
  const std::string own_prefix = kTmpPrefix + name + "-";
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    if (entry.path().filename().string().starts_with(own_prefix)) {
      Log()->info("golden {}: removing leftover {}", name, entry.path().filename().string());
      fs::remove_all(entry.path(), ec);
    }
  }
  const fs::path tmp_dir = root_ / (own_prefix + UniqueSuffix());
  if (::mkdir(tmp_dir.c_str(), 0700) != 0) return Fail(ErrnoError("mkdir " + tmp_dir.string(), errno));
  shared_->saving[name] = tmp_dir.filename().string();
  return Writer(root_, shared_, key, tmp_dir);
}

Result<void> GoldenSnapshotStore::Remove(const GoldenKey& key) {
  Forget(key.DirName());
  return RemoveDir(root_ / key.DirName());
}

Result<int> GoldenSnapshotStore::RemoveLeftovers() {
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return 0;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(kTmpPrefix) && !file.starts_with(kTrashPrefix)) continue;
    bool owned = false;
    for (const auto& [key, tmp] : shared_->saving) owned = owned || tmp == file;
    if (!owned) leftovers.push_back(entry.path());
  }
  if (ec) return Fail(ErrorCode::kInternal, "list " + root_.string() + ": " + ec.message());
  for (const auto& path : leftovers) {
    Log()->info("removing leftover {}", path.string());
    fs::remove_all(path, ec);
    if (ec) return Fail(ErrorCode::kInternal, "remove " + path.string() + ": " + ec.message());
  }
  return static_cast<int>(leftovers.size());
}

// --- Writer ---

GoldenSnapshotStore::Writer::Writer(fs::path root, std::shared_ptr<Shared> shared, GoldenKey key,
                                    fs::path tmp_dir)
    : root_(std::move(root)), shared_(std::move(shared)), key_(std::move(key)), tmp_dir_(std::move(tmp_dir)) {}

GoldenSnapshotStore::Writer::Writer(Writer&& other) noexcept
    : root_(std::move(other.root_)),
      shared_(std::move(other.shared_)),
      key_(std::move(other.key_)),
      tmp_dir_(std::move(other.tmp_dir_)),
      done_(other.done_) {
  other.done_ = true;
}

GoldenSnapshotStore::Writer::~Writer() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(tmp_dir_, ec);
  if (ec) Log()->warn("golden {}: could not remove {}: {}", key_.DirName(), tmp_dir_.string(), ec.message());
  shared_->saving.erase(key_.DirName());
}

Result<void> GoldenSnapshotStore::Writer::WriteMemory(int ram) {
  auto written = WriteMemoryFile(ram, memory_file());
  if (!written) return Fail(written.error());
  memory_ = *written;
  return {};
}

Result<GoldenSnapshot> GoldenSnapshotStore::Writer::Commit(GoldenMeta meta) {
  const std::string name = key_.DirName();
  if (done_) return Fail(ErrorCode::kConflict, "golden " + name + ": already committed");
  std::error_code ec;
  if (!fs::is_regular_file(disk(), ec)) {
    return Fail(ErrorCode::kInvalidArgument, "golden " + name + ": no disk.qcow2 in " + tmp_dir_.string());
  }
  auto digest = DigestFile(state_file());
  if (!digest) return Fail(digest.error().Wrap("golden " + name));
  if (digest->size == 0) return Fail(ErrorCode::kInvalidArgument, "golden " + name + ": empty state file");
  meta.format_version = kGoldenFormatVersion;
  meta.state_size = digest->size;
  meta.state_checksum = digest->checksum;
  std::vector<fs::path> frozen = {state_file(), disk()};
  if (memory_) {
    meta.memory_size = memory_->size;
    meta.memory_checksum = memory_->checksum;
    frozen.push_back(memory_file());
  }
  meta.created_at =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();

  // Frozen: every clone's overlay reads through disk.qcow2, so it must never
  // change again (QEMU opens it read-only too; the mode guards against tools).
  for (const fs::path& file : frozen) {
    if (::chmod(file.c_str(), 0444) != 0) return Fail(ErrnoError("chmod " + file.string(), errno));
    if (auto synced = SyncPath(file); !synced) return Fail(synced.error().Wrap("golden " + name));
  }
  if (auto written = WriteWholeFile(tmp_dir_ / kMetaFile, meta.ToJson().dump(2) + "\n"); !written) {
    return Fail(written.error().Wrap("golden " + name));
  }
  if (auto synced = SyncPath(tmp_dir_); !synced) return Fail(synced.error().Wrap("golden " + name));

  const fs::path final_dir = root_ / name;
  if (fs::exists(final_dir, ec)) {
    const fs::path trash = root_ / (kTrashPrefix + name + "-" + UniqueSuffix());
    if (::rename(final_dir.c_str(), trash.c_str()) != 0) {
      return Fail(ErrnoError("rename " + final_dir.string(), errno));
    }
    fs::remove_all(trash, ec);
  }
  if (::rename(tmp_dir_.c_str(), final_dir.c_str()) != 0) {
    return Fail(ErrnoError("rename " + tmp_dir_.string() + " to " + final_dir.string(), errno));
  }
  (void)SyncPath(root_);
  done_ = true;
  shared_->saving.erase(name);
  struct stat st {};
  if (::stat((final_dir / kStateFile).c_str(), &st) == 0) {
    shared_->verified[name] = FileStamp(st, meta, meta.state_checksum);
  }
  shared_->memories.erase(name);  // an older snapshot's; the first Find loads this one's
  Log()->info("golden {}: saved ({} bytes of state, {}; {} bytes of memory)", name, meta.state_size,
              meta.state_checksum, meta.memory_size);
  return GoldenSnapshot{key_, final_dir, final_dir / kStateFile, final_dir / kDiskFile, std::move(meta)};
}

}  // namespace agentvm
