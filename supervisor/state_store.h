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
};

class StateStore {
 public:
  // Opens (creating if needed) the database at `path`; ":memory:" for tests.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path);
  ~StateStore();

  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  Result<void> Put(const VmRecord& record);  // insert or replace
  Result<void> Delete(const std::string& id);
  Result<std::optional<VmRecord>> Get(const std::string& id);
  Result<std::vector<VmRecord>> List();

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  Result<void> Migrate();

  sqlite3* db_;
};

}  // namespace agentvm
