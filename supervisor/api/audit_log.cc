#include "supervisor/api/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/rfc3339.h"

namespace agentvm::api {
namespace {

Result<UniqueFd> OpenForAppend(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) return Fail(ErrorCode::kInternal, "open audit log " + path + ": " + std::strerror(errno));
  return fd;
}

}  // namespace

std::string AuditLine(const AuditRecord& record) {
  nlohmann::ordered_json line = {
      {"time", FormatRfc3339Utc(record.time_ms)},
      {"uid", record.uid},
      {"gid", record.gid},
      {"pid", record.pid},
      {"method", record.method},
      {"path", record.path},
      {"route", record.route},
      {"vm", record.vm},
      {"status", record.status},
      {"outcome", record.status >= 200 && record.status < 400 ? "ok" : "error"},
      {"duration_ms", record.duration_ms},
  };
  // Invalid UTF-8 in a path is replaced, never allowed to break the line.
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string AuditEventLine(const Event& event) {
  nlohmann::ordered_json line = {
      {"time", FormatRfc3339Utc(event.time_ms)},
      {"event", event.type},
      {"seq", event.seq},
      {"vm", event.vm},
  };
  if (event.fields.is_object()) {
    for (const auto& [key, value] : event.fields.items()) {
      if (!line.contains(key)) line[key] = value;
    }
  }
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(std::string path, std::uint64_t max_bytes) {
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Fail(ErrorCode::kInternal, "create audit log dir " + dir.string() + ": " + ec.message());
    std::filesystem::permissions(dir, std::filesystem::perms(0750), ec);
  }
  auto fd = OpenForAppend(path);
  if (!fd) return Fail(fd.error());
  struct stat st {};
  const std::uint64_t size = ::fstat(fd->get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(path), max_bytes, std::move(*fd), size));
}

AuditLog::AuditLog(std::string path, std::uint64_t max_bytes, UniqueFd fd, std::uint64_t size)
    : path_(std::move(path)), max_bytes_(max_bytes), fd_(std::move(fd)), size_(size) {}

Result<void> AuditLog::Rotate() {
  const std::string old = path_ + ".1";
  if (::rename(path_.c_str(), old.c_str()) != 0) {
    return Fail(ErrorCode::kInternal, "rotate audit log " + path_ + ": " + std::strerror(errno));
  }
  auto fd = OpenForAppend(path_);
  if (!fd) return Fail(fd.error());
  fd_ = std::move(*fd);
  size_ = 0;
  return {};
}

void AuditLog::Write(const AuditRecord& record) { Append(AuditLine(record)); }

void AuditLog::WriteEvent(const Event& event) { Append(AuditEventLine(event)); }

void AuditLog::Append(const std::string& line) {
  if (size_ > 0 && size_ + line.size() > max_bytes_) {
    if (auto rotated = Rotate(); !rotated) Logger("api")->error("{}", rotated.error().message);
  }
  const ssize_t written = ::write(fd_.get(), line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size())) {
    Logger("api")->error("write audit log {}: {}", path_, written < 0 ? std::strerror(errno) : "short write");
  }
  if (written > 0) size_ += static_cast<std::uint64_t>(written);
}

}  // namespace agentvm::api
