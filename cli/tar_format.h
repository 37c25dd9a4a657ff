// The tar format `agentvm cp -r` speaks with the guest's tar (busybox or GNU):
// 512-byte ustar headers, GNU 'L'/'K' records for names and link targets
// longer than the header holds, pax 'x' records understood on reading.
// Only what a directory tree needs: files, directories, symlinks, hard links.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm::cli::tar {

inline constexpr std::size_t kBlockBytes = 512;

enum class EntryType : char {
  kFile = '0',
  kHardLink = '1',
  kSymlink = '2',
  kCharDevice = '3',
  kBlockDevice = '4',
  kDirectory = '5',
  kFifo = '6',
  kGnuLongName = 'L',
  kGnuLongLink = 'K',
  kPaxHeader = 'x',
  kPaxGlobal = 'g',
};

struct Header {
  std::string name;
  std::string link;  // symlink target or hard link's first name
  EntryType type = EntryType::kFile;
  std::uint32_t mode = 0;  // permission bits
  std::uint64_t size = 0;  // bytes of data that follow the header
  std::int64_t mtime = 0;  // seconds since the epoch
};

// The header block(s) for `header`: GNU long-name/long-link records first
// when a name does not fit, then the ustar block. Owner is left 0 (the
// reader decides who owns what it extracts).
std::string EncodeHeader(const Header& header);

// Zero bytes that pad `size` bytes of data to a whole block.
std::size_t PaddingFor(std::uint64_t size);

// One 512-byte block. nullopt: an all-zero block (the end of the archive).
// An error: not a tar header (bad checksum, bad number).
Result<std::optional<Header>> DecodeHeader(std::string_view block);

// The "path" and "linkpath" of a pax extended header's records.
struct PaxOverrides {
  std::optional<std::string> path;
  std::optional<std::string> link;
};
Result<PaxOverrides> ParsePax(std::string_view records);

}  // namespace agentvm::cli::tar
