// The per-VM egress log's storage (issue 12): what a domain-filtered VM asked
// the resolver and where it tried to connect, one EgressEntry each, kept
// bounded twice: in memory a ring of the last `capacity` entries (older ones
// are dropped and counted), on disk a JSONL file that is rotated once it
// would pass `max_bytes` (the previous one kept as <path>.1, so at most
// 2 * max_bytes per VM). The guest decides how many entries there are: both
// bounds hold however fast it makes them.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/follow_queue.h"
#include "common/unique_fd.h"

namespace agentvm::net {

struct EgressEntry {
  std::uint64_t seq = 0;     // assigned by the ring, from 1
  std::int64_t time_ms = 0;  // unix milliseconds
  // "dns", "refused" (a connection), "allowed" (a new connection), or
  // "dropped": on a followed stream only, where `count` entries were not
  // sent because the reader fell behind (seq 0; time of the first).
  std::string kind;
  // dns: the question and what came of it (verdicts as DnsQuestionRecord's).
  std::string name;
  std::uint16_t dns_type = 0;
  std::string verdict;
  std::vector<std::string> answers;
  // refused / allowed: where to, and the name that taught the address, if any.
  std::string destination;
  std::uint16_t port = 0;
  std::string protocol;
  std::string learned_from;
  std::uint64_t count = 0;  // dropped
};

// One line of JSON, no newline; only the fields of its kind. The format of
// the JSONL file and of GET /v1/vms/{id}/egress (docs/api.md).
std::string EgressEntryToJson(const EgressEntry& entry);
// One such line back (the CLI's side); kInvalidArgument when it is not one.
Result<EgressEntry> EgressEntryFromJson(std::string_view line);

class EgressRing {
 public:
  explicit EgressRing(std::size_t capacity) : capacity_(capacity) {}
  // Gives the entry the next seq and keeps it, dropping the oldest when full.
  const EgressEntry& Push(EgressEntry entry);
  // The entries kept with seq > `after`, oldest first.
  std::vector<EgressEntry> Since(std::uint64_t after) const;
  // The name of the newest allowed DNS answer kept that gave `address`
  // (what a refused connection was learned from, if it was: its element
  // expired or the list changed since); empty when no kept answer did.
  std::string NameAnswering(const std::string& address) const;
  std::size_t size() const { return entries_.size(); }
  std::uint64_t dropped() const { return dropped_; }

 private:
  std::size_t capacity_;
  std::deque<EgressEntry> entries_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t dropped_ = 0;
};

class CappedJsonlFile {
 public:
  // Appends to `path` (created 0600 if missing; its size so far counts).
  static Result<CappedJsonlFile> Open(std::filesystem::path path, std::uint64_t max_bytes);
  // `line` and a newline; first renames the file to <path>.1 and starts a
  // new one when the line would take it past max_bytes. A line longer than
  // max_bytes is refused (kInvalidArgument) and nothing changes.
  Result<void> Append(std::string_view line);
  std::uint64_t size() const { return size_; }

 private:
  CappedJsonlFile(std::filesystem::path path, std::uint64_t max_bytes, UniqueFd fd, std::uint64_t size);
  Result<void> Rotate();

  std::filesystem::path path_;
  std::uint64_t max_bytes_;
  UniqueFd fd_;
  std::uint64_t size_;
};

// One VM's egress log: its ring, its file (opened at the first entry, in a
// directory the VM's runtime owns; a file that cannot be written is given up
// on and the ring goes on) and its DNS questions counted by verdict.
inline constexpr std::size_t kEgressRingEntries = 1000;
inline constexpr std::uint64_t kEgressFileBytes = 1024 * 1024;
// What one follower of a VM's log may have waiting (FollowQueue): a reader
// that slow gets a "dropped" entry in place of the rest.
inline constexpr std::size_t kEgressFollowQueue = 256;

using EgressFollower = FollowQueue<EgressEntry>;
// The entry a follower's gap is sent as (kind "dropped").
EgressEntry DroppedEntry(const EgressFollower::Gap& gap);

class VmEgressLog {
 public:
  explicit VmEgressLog(std::filesystem::path file, std::size_t ring_entries = kEgressRingEntries,
                       std::uint64_t file_bytes = kEgressFileBytes);
  ~VmEgressLog();  // closes the followers still held: their streams end
  VmEgressLog(const VmEgressLog&) = delete;
  VmEgressLog& operator=(const VmEgressLog&) = delete;
  // Stamps the entry with the time (unless set), keeps it and hands it to
  // every follower.
  void Add(EgressEntry entry);
  // Every entry added from now on, through a queue of `queue_size`. Taken
  // together with ring().Since() (no co_await between), nothing is missed
  // or seen twice. The log holds it weakly: dropping it ends the follow.
  std::shared_ptr<EgressFollower> Follow(boost::asio::any_io_executor executor,
                                         std::size_t queue_size = kEgressFollowQueue);
  const EgressRing& ring() const { return ring_; }
  // DNS questions by verdict ("allowed", "refused", ...), since the VM started.
  const std::map<std::string, std::uint64_t>& dns_verdicts() const { return dns_verdicts_; }

 private:
  std::filesystem::path path_;
  std::uint64_t file_bytes_;
  EgressRing ring_;
  std::optional<CappedJsonlFile> file_;
  bool file_failed_ = false;
  std::map<std::string, std::uint64_t> dns_verdicts_;
  std::vector<std::weak_ptr<EgressFollower>> followers_;
};

}  // namespace agentvm::net
