#include "supervisor/state_store.h"

#include <filesystem>

#include <sqlite3.h>

#include <utility>

namespace agentvm {
namespace {

// One prepared statement, finalized on every path.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void Bind(int index, std::int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  std::string Text(int column) {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    return text ? reinterpret_cast<const char*>(text) : "";
  }
  std::int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  Error Failure(const std::string& what) const {
    return Error{ErrorCode::kInternal, "state store: " + what + ": " + sqlite3_errmsg(db_)};
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr char kColumns[] =
    "id, image, state, cpus, memory_mib, accel, channel, guest_cid, pid, runtime_dir, disk_dir, reason, "
    "created_at, network, boot, pool, unclaimed, qemu_start_time, guest_channel_error, mounts";

VmRecord ReadRecord(Statement& s) {
  return VmRecord{
      .id = s.Text(0),
      .image = s.Text(1),
      .state = s.Text(2),
      .cpus = static_cast<int>(s.Int(3)),
      .memory_mib = static_cast<int>(s.Int(4)),
      .accel = s.Text(5),
      .channel = s.Text(6),
      .guest_cid = static_cast<std::uint32_t>(s.Int(7)),
      .pid = static_cast<int>(s.Int(8)),
      .runtime_dir = s.Text(9),
      .disk_dir = s.Text(10),
      .reason = s.Text(11),
      .created_at = s.Int(12),
      .network = s.Text(13),
      .boot = s.Text(14),
      .pool = s.Text(15),
      .unclaimed = s.Int(16) != 0,
      .qemu_start_time = static_cast<std::uint64_t>(s.Int(17)),
      .guest_channel_error = s.Text(18),
      .mounts = s.Text(19),
  };
}

}  // namespace

Result<void> StateStore::CheckIntegrity(const std::string& path) {
  std::error_code ec;
  if (path == ":memory:" || !std::filesystem::exists(path, ec)) return {};
  sqlite3* db = nullptr;
  // Read-write (a read-only connection cannot open a crashed daemon's WAL),
  // but only read here: quick_check is a read.
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  std::string verdict;
  if (rc == SQLITE_OK) {
    sqlite3_stmt* check = nullptr;
    rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &check, nullptr);
    if (rc == SQLITE_OK && (rc = sqlite3_step(check)) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(check, 0);
      verdict = text ? reinterpret_cast<const char*>(text) : "";
      rc = SQLITE_OK;
    }
    sqlite3_finalize(check);
  }
  std::string message = rc == SQLITE_OK ? verdict : (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  sqlite3_close(db);
  if (rc == SQLITE_OK && verdict == "ok") return {};
  return Fail(ErrorCode::kInternal,
              "state database " + path + " is damaged (" + message +
                  "); agentvmd left it as it is. To start afresh, stop any QEMU it launched "
                  "(pgrep -af qemu-system), then move the file aside (mv " +
                  path + " " + path + ".damaged, with its -wal and -shm files) and start agentvmd again: "
                  "it forgets the VMs the file listed (their disks stay in the state directory)");
}

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path) {
  if (auto sound = CheckIntegrity(path); !sound) return Fail(sound.error());
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Fail(ErrorCode::kInternal, "open state database " + path + ": " + message);
  }
  std::unique_ptr<StateStore> store(new StateStore(db));
  if (auto migrated = store->Migrate(); !migrated) return Fail(migrated.error());
  return store;
}

StateStore::~StateStore() { sqlite3_close(db_); }

Result<void> StateStore::Exec(const std::string& sql, const std::string& what) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return Fail(ErrorCode::kInternal, "state store: " + what + ": " + text);
  }
  return {};
}

Result<void> StateStore::Migrate() {
  // WAL keeps a crash mid-write from corrupting the file; the busy timeout
  // covers an operator reading the database with sqlite3 meanwhile.
  const char* sql =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA busy_timeout=2000;"
      "CREATE TABLE IF NOT EXISTS vms ("
      "  id TEXT PRIMARY KEY, image TEXT NOT NULL, state TEXT NOT NULL,"
      "  cpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, accel TEXT NOT NULL,"
      "  channel TEXT NOT NULL, guest_cid INTEGER NOT NULL, pid INTEGER NOT NULL,"
      "  runtime_dir TEXT NOT NULL, disk_dir TEXT NOT NULL, reason TEXT NOT NULL,"
      "  created_at INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS leases ("
      "  address TEXT PRIMARY KEY, vm_id TEXT NOT NULL UNIQUE);"
      "CREATE TABLE IF NOT EXISTS owned_links (name TEXT PRIMARY KEY);";
  if (auto created = Exec(sql, "create schema"); !created) return created;

  // Columns added after the first schema; older databases lack them.
  struct AddedColumn {
    const char* name;
    const char* definition;
  };
  constexpr AddedColumn kAdded[] = {
      {"network", "TEXT NOT NULL DEFAULT ''"},
      {"boot", "TEXT NOT NULL DEFAULT ''"},
      {"pool", "TEXT NOT NULL DEFAULT ''"},
      {"unclaimed", "INTEGER NOT NULL DEFAULT 0"},
      {"qemu_start_time", "INTEGER NOT NULL DEFAULT 0"},
      {"guest_channel_error", "TEXT NOT NULL DEFAULT ''"},
      {"mounts", "TEXT NOT NULL DEFAULT ''"},
  };
  for (const AddedColumn& column : kAdded) {
    Statement exists(db_, "SELECT 1 FROM pragma_table_info('vms') WHERE name = ?1");
    if (!exists.ok()) return Fail(exists.Failure("inspect schema"));
    exists.Bind(1, std::string(column.name));
    if (sqlite3_step(exists.get()) == SQLITE_ROW) continue;
    const std::string name = column.name;
    if (auto added = Exec("ALTER TABLE vms ADD COLUMN " + name + " " + column.definition, "add column " + name);
        !added) {
      return added;
    }
  }
  return {};
}

Result<void> StateStore::Put(const VmRecord& r) {
  Statement s(db_, "INSERT OR REPLACE INTO vms (id, image, state, cpus, memory_mib, accel, channel, "
                   "guest_cid, pid, runtime_dir, disk_dir, reason, created_at, network, boot, pool, unclaimed, "
                   "qemu_start_time, guest_channel_error, mounts) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)");
  if (!s.ok()) return Fail(s.Failure("prepare put"));
  s.Bind(1, r.id);
  s.Bind(2, r.image);
  s.Bind(3, r.state);
  s.Bind(4, std::int64_t{r.cpus});
  s.Bind(5, std::int64_t{r.memory_mib});
  s.Bind(6, r.accel);
  s.Bind(7, r.channel);
  s.Bind(8, std::int64_t{r.guest_cid});
  s.Bind(9, std::int64_t{r.pid});
  s.Bind(10, r.runtime_dir);
  s.Bind(11, r.disk_dir);
  s.Bind(12, r.reason);
  s.Bind(13, r.created_at);
  s.Bind(14, r.network);
  s.Bind(15, r.boot);
  s.Bind(16, r.pool);
  s.Bind(17, std::int64_t{r.unclaimed ? 1 : 0});
  s.Bind(18, static_cast<std::int64_t>(r.qemu_start_time));
  s.Bind(19, r.guest_channel_error);
  s.Bind(20, r.mounts);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Fail(s.Failure("put " + r.id));
  return {};
}

Result<void> StateStore::Delete(const std::string& id) {
  Statement s(db_, "DELETE FROM vms WHERE id = ?1");
  if (!s.ok()) return Fail(s.Failure("prepare delete"));
  s.Bind(1, id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Fail(s.Failure("delete " + id));
  return {};
}

Result<std::optional<VmRecord>> StateStore::Get(const std::string& id) {
  Statement s(db_, (std::string("SELECT ") + kColumns + " FROM vms WHERE id = ?1").c_str());
  if (!s.ok()) return Fail(s.Failure("prepare get"));
  s.Bind(1, id);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<VmRecord>();
  if (rc != SQLITE_ROW) return Fail(s.Failure("get " + id));
  return std::optional<VmRecord>(ReadRecord(s));
}

Result<std::vector<VmRecord>> StateStore::List() {
  Statement s(db_, (std::string("SELECT ") + kColumns + " FROM vms ORDER BY created_at, id").c_str());
  if (!s.ok()) return Fail(s.Failure("prepare list"));
  std::vector<VmRecord> records;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) records.push_back(ReadRecord(s));
  if (rc != SQLITE_DONE) return Fail(s.Failure("list"));
  return records;
}

Result<void> StateStore::PutLease(const LeaseRecord& lease) {
  Statement s(db_, "INSERT INTO leases (address, vm_id) VALUES (?1, ?2)");
  if (!s.ok()) return Fail(s.Failure("prepare put lease"));
  s.Bind(1, lease.address);
  s.Bind(2, lease.vm_id);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_CONSTRAINT) {
    return Fail(ErrorCode::kConflict, "state store: address " + lease.address + " or VM " + lease.vm_id +
                                          " already has a lease");
  }
  if (rc != SQLITE_DONE) return Fail(s.Failure("put lease " + lease.address));
  return {};
}

Result<void> StateStore::DeleteLease(const std::string& vm_id) {
  Statement s(db_, "DELETE FROM leases WHERE vm_id = ?1");
  if (!s.ok()) return Fail(s.Failure("prepare delete lease"));
  s.Bind(1, vm_id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Fail(s.Failure("delete lease of " + vm_id));
  return {};
}

Result<std::vector<LeaseRecord>> StateStore::ListLeases() {
  Statement s(db_, "SELECT address, vm_id FROM leases ORDER BY vm_id");
  if (!s.ok()) return Fail(s.Failure("prepare list leases"));
  std::vector<LeaseRecord> leases;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) leases.push_back({s.Text(0), s.Text(1)});
  if (rc != SQLITE_DONE) return Fail(s.Failure("list leases"));
  return leases;
}

Result<void> StateStore::AddOwnedLink(const std::string& name) {
  Statement s(db_, "INSERT OR IGNORE INTO owned_links (name) VALUES (?1)");
  if (!s.ok()) return Fail(s.Failure("prepare add owned link"));
  s.Bind(1, name);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Fail(s.Failure("add owned link " + name));
  return {};
}

Result<void> StateStore::DeleteOwnedLink(const std::string& name) {
  Statement s(db_, "DELETE FROM owned_links WHERE name = ?1");
  if (!s.ok()) return Fail(s.Failure("prepare delete owned link"));
  s.Bind(1, name);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Fail(s.Failure("delete owned link " + name));
  return {};
}

Result<std::vector<std::string>> StateStore::ListOwnedLinks() {
  Statement s(db_, "SELECT name FROM owned_links ORDER BY name");
  if (!s.ok()) return Fail(s.Failure("prepare list owned links"));
  std::vector<std::string> names;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) names.push_back(s.Text(0));
  if (rc != SQLITE_DONE) return Fail(s.Failure("list owned links"));
  return names;
}

}  // namespace agentvm
