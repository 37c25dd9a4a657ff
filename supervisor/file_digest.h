// XXH64 checksums of byte strings and whole files: fast enough to verify a
// ~100 MB golden snapshot state before every first restore.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm {

// XXH64 with seed 0 (the published xxHash algorithm), fed incrementally: a
// fast 64-bit checksum that catches a corrupted state file.
class Xxh64 {
 public:
  void Update(std::string_view bytes);
  std::uint64_t Digest() const;

 private:
  std::uint64_t acc_[4] = {};
  unsigned char buffer_[32] = {};
  std::size_t buffered_ = 0;
  std::uint64_t total_ = 0;
  bool started_ = false;
};

std::uint64_t Xxh64Of(std::string_view bytes);
std::string Hex64(std::uint64_t value);  // 16 lowercase hex digits
// XXH64 of a whole file, and its size.
struct FileDigest {
  std::uint64_t size = 0;
  std::string checksum;  // "xxh64:<16 hex>"
};
Result<FileDigest> DigestFile(const std::filesystem::path& path);

}  // namespace agentvm
