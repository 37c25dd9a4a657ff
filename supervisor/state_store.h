// StateStore: the SQLite database in <state-dir>/agentvm.db that remembers every
// VM, so a restarted daemon knows what exists and can clean it up. Only the
// Supervisor writes it; each call is one statement, committed on return.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

struct sqlite3;

namespace agentvm {

struct VmRecord {
  std::string id;
  std::string image;
  std::string state;  // VmStateName()
  int cpus = 0;
  int memory_mib = 0;
  std::string accel;
  std::string channel;
  std::uint32_t guest_cid = 0;
  int pid = 0;               // 0 when no QEMU runs
  std::string runtime_dir;   // sockets, console log, pidfile
  std::string disk_dir;      // the overlay lives here
  std::string reason;
  std::int64_t created_at = 0;
  std::string network;  // the VM's network settings and attachment, as JSON
  std::string boot;     // "cold", "restore" or "pool" (VmInfo::boot)
  std::string pool;     // the pool it belongs or belonged to; empty for none
  // Never handed to a user: a pool's ready VM or a golden snapshot's VM. A
  // later daemon discards it instead of listing it.
  bool unclaimed = false;
  // When QEMU (pid) started, in clock ticks after boot (/proc/<pid>/stat
  // field 22): with the pid and its command line, what tells a later daemon
  // that a live pid is still this VM's QEMU and not a recycled one.
  std::uint64_t qemu_start_time = 0;
  std::string guest_channel_error;  // VmInfo::guest_channel_error
  std::string mounts;  // VmInfo::mounts, as JSON; "" for none
};

// One leased IPv4 address of the VMs' subnet.
struct LeaseRecord {
  std::string address;  // dotted quad
  std::string vm_id;
};

// Where agentvmd keeps its database in `state_dir`.
inline std::string StateDatabasePath(const std::string& state_dir) { return state_dir + "/agentvm.db"; }

class StateStore {
 public:
  // Opens (creating if needed) the database at `path`; ":memory:" for tests.
  // A database that fails CheckIntegrity is refused before anything is
  // written to it.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path);

  // Reads the database at `path` (absent is fine: it will be created) and
  // fails, saying how to recover, when it is not a sound SQLite database.
  // Writes nothing to the database file.
  static Result<void> CheckIntegrity(const std::string& path);
  ~StateStore();

  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  Result<void> Put(const VmRecord& record);  // insert or replace
  Result<void> Delete(const std::string& id);
  Result<std::optional<VmRecord>> Get(const std::string& id);
  Result<std::vector<VmRecord>> List();

  // Leases: an address belongs to at most one VM and a VM has at most one
  // address (both columns are unique), so a double allocation is a kConflict.
  Result<void> PutLease(const LeaseRecord& lease);
  Result<void> DeleteLease(const std::string& vm_id);
  Result<std::vector<LeaseRecord>> ListLeases();

  // Links (the bridge) this daemon created, so a later daemon removes exactly
  // those and never one an operator made.
  Result<void> AddOwnedLink(const std::string& name);
  Result<void> DeleteOwnedLink(const std::string& name);
  Result<std::vector<std::string>> ListOwnedLinks();

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  Result<void> Migrate();
  Result<void> Exec(const std::string& sql, const std::string& what);

  sqlite3* db_;
};

}  // namespace agentvm
