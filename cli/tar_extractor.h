// Extracts a tar stream that comes from a guest (untrusted) into a host
// directory, as it arrives (`agentvm cp -r ID:/path DIR`).
//
// Nothing outside the directory is ever touched: absolute names and `..`
// are refused; every path is walked one component at a time with
// O_NOFOLLOW, so an entry can never go through a symlink, also not one an
// earlier entry made; symlinks are created as symlinks and never followed.
// Files are created by the caller, owned by the caller (no chown);
// setuid/setgid bits are dropped; device nodes, FIFOs and sockets are
// skipped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/tar_format.h"
#include "common/error.h"
#include "common/unique_fd.h"

namespace agentvm::cli::tar {

class Extractor {
 public:
  struct Stats {
    std::uint64_t entries = 0;
    std::vector<std::string> skipped;  // names of device nodes, FIFOs, ...
  };

  // Into the existing directory `dir`.
  Result<void> Open(const std::string& dir);
  // The next bytes of the stream, any size.
  Result<void> Feed(std::string_view bytes);
  // The stream is over: fails if the archive was cut short, else gives the
  // directories their modes and mtimes (last, so a read-only directory
  // could still be filled).
  Result<void> Finish();
  const Stats& stats() const { return stats_; }

 private:
  enum class Phase { kHeader, kData, kPadding, kEnd };
  struct DirectoryToFix {
    std::string name;
    std::uint32_t mode;
    std::int64_t mtime;
  };

  Result<void> StartEntry(Header header);
  Result<void> EndData();
  Result<void> MakeDirectory(const std::vector<std::string>& parts);
  // Opens the directory that holds the last of `parts`, making missing
  // parents when `create`.
  Result<UniqueFd> OpenParent(const std::vector<std::string>& parts, bool create);
  // Removes what is at `leaf` unless it is a directory (then an error).
  Result<void> ClearLeaf(int parent, const std::string& leaf, const std::string& name);

  std::string dir_;
  UniqueFd root_;
  Phase phase_ = Phase::kHeader;
  std::string block_;         // the header (or extended record) being read
  std::uint64_t left_ = 0;    // data bytes left of the current entry
  std::size_t padding_ = 0;   // zero bytes left after it
  std::optional<Header> current_;  // the entry whose data is being read
  UniqueFd file_;             // where its data goes, if anywhere
  std::string extended_;      // data of a GNU/pax record being read
  std::optional<std::string> next_name_, next_link_;
  std::vector<DirectoryToFix> directories_;
  Stats stats_;
};

// "a/./b/" -> {"a", "b"}; refuses absolute names and `..`.
Result<std::vector<std::string>> SplitEntryName(std::string_view name);

}  // namespace agentvm::cli::tar
