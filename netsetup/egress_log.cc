#include "netsetup/egress_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/logging.h"

namespace agentvm::net {
namespace {

std::unexpected<Error> Io(const std::string& what, const std::filesystem::path& path) {
  return Fail(ErrorCode::kInternal, what + " " + path.string() + ": " + std::strerror(errno));
}

Result<UniqueFd> OpenForAppend(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return Io("open", path);
  return fd;
}

}  // namespace

std::string EgressEntryToJson(const EgressEntry& entry) {
  nlohmann::ordered_json json{{"seq", entry.seq}, {"time_ms", entry.time_ms}, {"kind", entry.kind}};
  if (entry.kind == "dropped") {
    json.erase("seq");  // a gap, not an entry of the log
    json["count"] = entry.count;
  } else if (entry.kind == "dns") {
    json["name"] = entry.name;
    json["type"] = entry.dns_type;
    json["verdict"] = entry.verdict;
    json["answers"] = entry.answers;
  } else {
    json["destination"] = entry.destination;
    json["port"] = entry.port;
    json["protocol"] = entry.protocol;
    json["verdict"] = entry.verdict;
    json["learned_from"] = entry.learned_from;
  }
  // Names come from the guest: never let invalid UTF-8 throw.
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<EgressEntry> EgressEntryFromJson(std::string_view line) {
  auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("kind") || !json["kind"].is_string()) {
    return Fail(ErrorCode::kInvalidArgument, "not an egress log entry");
  }
  auto text = [&](const char* key) { return json.contains(key) && json[key].is_string() ? json[key].get<std::string>() : ""; };
  auto number = [&](const char* key) -> std::uint64_t {
    return json.contains(key) && json[key].is_number_unsigned() ? json[key].get<std::uint64_t>() : 0;
  };
  EgressEntry entry;
  entry.seq = number("seq");
  entry.time_ms = static_cast<std::int64_t>(number("time_ms"));
  entry.kind = text("kind");
  entry.name = text("name");
  entry.dns_type = static_cast<std::uint16_t>(number("type"));
  entry.verdict = text("verdict");
  if (json.contains("answers") && json["answers"].is_array()) {
    for (const auto& answer : json["answers"]) {
      if (answer.is_string()) entry.answers.push_back(answer.get<std::string>());
    }
  }
  entry.destination = text("destination");
  entry.port = static_cast<std::uint16_t>(number("port"));
  entry.protocol = text("protocol");
  entry.learned_from = text("learned_from");
  entry.count = number("count");
  return entry;
}

const EgressEntry& EgressRing::Push(EgressEntry entry) {
  entry.seq = next_seq_++;
  if (capacity_ > 0 && entries_.size() == capacity_) {
    entries_.pop_front();
    ++dropped_;
  }
  entries_.push_back(std::move(entry));
  return entries_.back();
}

std::vector<EgressEntry> EgressRing::Since(std::uint64_t after) const {
  std::vector<EgressEntry> found;
  for (const EgressEntry& entry : entries_) {
    if (entry.seq > after) found.push_back(entry);
  }
  return found;
}

std::string EgressRing::NameAnswering(const std::string& address) const {
  for (auto entry = entries_.rbegin(); entry != entries_.rend(); ++entry) {
    if (entry->kind != "dns" || entry->verdict != "allowed") continue;
    for (const std::string& answer : entry->answers) {
      if (answer == address) return entry->name;
    }
  }
  return "";
}

Result<CappedJsonlFile> CappedJsonlFile::Open(std::filesystem::path path, std::uint64_t max_bytes) {
  auto fd = OpenForAppend(path);
  if (!fd) return Fail(fd.error());
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return Io("stat", path);
  return CappedJsonlFile(std::move(path), max_bytes, std::move(*fd), static_cast<std::uint64_t>(st.st_size));
}

CappedJsonlFile::CappedJsonlFile(std::filesystem::path path, std::uint64_t max_bytes, UniqueFd fd, std::uint64_t size)
    : path_(std::move(path)), max_bytes_(max_bytes), fd_(std::move(fd)), size_(size) {}

Result<void> CappedJsonlFile::Rotate() {
  std::filesystem::path previous = path_;
  previous += ".1";
  if (::rename(path_.c_str(), previous.c_str()) != 0) return Io("rename", path_);
  auto fd = OpenForAppend(path_);
  if (!fd) return Fail(fd.error());
  fd_ = std::move(*fd);
  size_ = 0;
  return {};
}

Result<void> CappedJsonlFile::Append(std::string_view line) {
  const std::uint64_t bytes = line.size() + 1;
  if (bytes > max_bytes_) {
    return Fail(ErrorCode::kInvalidArgument, "a log line of " + std::to_string(bytes) +
                                                 " bytes is over the file's cap of " + std::to_string(max_bytes_));
  }
  if (size_ + bytes > max_bytes_) {
    if (auto rotated = Rotate(); !rotated) return rotated;
  }
  std::string data(line);
  data += '\n';
  // One write of an O_APPEND file: a line is never interleaved or split.
  ssize_t written = ::write(fd_.get(), data.data(), data.size());
  if (written < 0) return Io("write", path_);
  size_ += static_cast<std::uint64_t>(written);
  return {};
}

EgressEntry DroppedEntry(const EgressFollower::Gap& gap) {
  return EgressEntry{.time_ms = gap.first.time_ms, .kind = "dropped", .count = gap.count};
}

VmEgressLog::VmEgressLog(std::filesystem::path file, std::size_t ring_entries, std::uint64_t file_bytes)
    : path_(std::move(file)), file_bytes_(file_bytes), ring_(ring_entries) {}

VmEgressLog::~VmEgressLog() {
  for (auto& weak : followers_) {
    if (auto follower = weak.lock()) follower->Close();
  }
}

std::shared_ptr<EgressFollower> VmEgressLog::Follow(boost::asio::any_io_executor executor, std::size_t queue_size) {
  auto follower = std::make_shared<EgressFollower>(std::move(executor), queue_size);
  followers_.push_back(follower);
  return follower;
}

void VmEgressLog::Add(EgressEntry entry) {
  if (entry.time_ms == 0) {
    entry.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  }
  if (entry.kind == "dns") ++dns_verdicts_[entry.verdict];
  const EgressEntry& kept = ring_.Push(std::move(entry));
  std::erase_if(followers_, [](const std::weak_ptr<EgressFollower>& weak) { return weak.expired(); });
  for (auto& weak : followers_) weak.lock()->Push(kept);
  if (file_failed_) return;
  if (!file_) {
    auto opened = CappedJsonlFile::Open(path_, file_bytes_);
    if (!opened) {
      file_failed_ = true;
      Logger("egress")->warn("egress log file: {}; keeping the log in memory only", opened.error().message);
      return;
    }
    file_ = std::move(*opened);
  }
  if (auto written = file_->Append(EgressEntryToJson(kept)); !written) {
    file_failed_ = true;
    Logger("egress")->warn("egress log file: {}; keeping the log in memory only", written.error().message);
  }
}

}  // namespace agentvm::net
