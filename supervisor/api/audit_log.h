// AuditLog: one JSON line per API call that changes something (docs/
// operations.md, "Audit log"): when (RFC 3339, UTC), who (the caller's uid,
// gid and pid from SO_PEERCRED), what (method, path, route, VM id), and how
// it ended (status, outcome, duration). The path is written without its
// query string and no request body is ever read into it, so file contents,
// stdin, argv and env values never reach the log.
//
// It also gets one line per lifecycle event (event_log.h: created, started,
// exec_finished, stopped, ...), so the log is the durable record of what
// happened to the VMs, not only of who asked: {"time", "event" (the type),
// "seq", "vm", then the event's fields}. A line with "event" is a lifecycle
// event, one with "method" an API call. Events carry no file contents, no
// env and of an exec only argv[0].
//
// Lines are appended with O_APPEND and one write(2) each. When the file
// would grow past `max_bytes`, it is renamed to "<path>.1" (replacing the
// previous one) and a new file is started: at most two files, bounded.
// Single-threaded (the daemon's io_context thread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/unique_fd.h"
#include "supervisor/event_log.h"

namespace agentvm::api {

struct AuditRecord {
  std::int64_t time_ms = 0;  // unix milliseconds, when the call ended
  // The caller, from SO_PEERCRED; -1 when unknown.
  std::int64_t uid = -1;
  std::int64_t gid = -1;
  std::int64_t pid = -1;
  std::string method;
  std::string path;   // without the query string
  std::string route;  // RouteName(), or "" for a request no route matched
  std::string vm;
  int status = 0;
  std::int64_t duration_ms = 0;
};

class AuditLog {
 public:
  static constexpr std::uint64_t kDefaultMaxBytes = 64ull << 20;

  // Opens (creates, 0640) `path` for appending; its directory is created
  // (0750) if missing.
  static Result<std::unique_ptr<AuditLog>> Open(std::string path, std::uint64_t max_bytes = kDefaultMaxBytes);

  // Appends the record's line; a failure is logged, never fatal to the call.
  void Write(const AuditRecord& record);
  // Appends the event's line, the same way.
  void WriteEvent(const Event& event);

  const std::string& path() const { return path_; }

 private:
  AuditLog(std::string path, std::uint64_t max_bytes, UniqueFd fd, std::uint64_t size);
  void Append(const std::string& line);
  Result<void> Rotate();

  std::string path_;
  std::uint64_t max_bytes_;
  UniqueFd fd_;
  std::uint64_t size_;
};

// The record's JSON line, newline included.
std::string AuditLine(const AuditRecord& record);
// The event's JSON line, newline included.
std::string AuditEventLine(const Event& event);

}  // namespace agentvm::api
