#include "supervisor/file_digest.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "common/unique_fd.h"

namespace agentvm {
namespace fs = std::filesystem;
namespace {

// The published XXH64 primes.
constexpr std::uint64_t kP1 = 11400714785074694791ULL;
constexpr std::uint64_t kP2 = 14029467366897019727ULL;
constexpr std::uint64_t kP3 = 1609587929392839161ULL;
constexpr std::uint64_t kP4 = 9650029242287828579ULL;
constexpr std::uint64_t kP5 = 2870177450012600261ULL;

std::uint64_t Read64(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86_64, aarch64)
}
std::uint32_t Read32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
std::uint64_t Round(std::uint64_t acc, std::uint64_t input) {
  acc += input * kP2;
  return std::rotl(acc, 31) * kP1;
}
std::uint64_t MergeRound(std::uint64_t acc, std::uint64_t value) {
  acc ^= Round(0, value);
  return acc * kP1 + kP4;
}

}  // namespace

void Xxh64::Update(std::string_view bytes) {
  if (!started_) {
    acc_[0] = kP1 + kP2;
    acc_[1] = kP2;
    acc_[2] = 0;
    acc_[3] = 0 - kP1;
    started_ = true;
  }
  total_ += bytes.size();
  auto p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t left = bytes.size();
  if (buffered_ > 0) {
    const std::size_t take = std::min(left, sizeof buffer_ - buffered_);
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    left -= take;
    if (buffered_ < sizeof buffer_) return;
    for (int i = 0; i < 4; ++i) acc_[i] = Round(acc_[i], Read64(buffer_ + 8 * i));
    buffered_ = 0;
  }
  while (left >= 32) {
    for (int i = 0; i < 4; ++i) acc_[i] = Round(acc_[i], Read64(p + 8 * i));
    p += 32;
    left -= 32;
  }
  std::memcpy(buffer_, p, left);
  buffered_ = left;
}

std::uint64_t Xxh64::Digest() const {
  std::uint64_t h;
  if (total_ >= 32) {
    h = std::rotl(acc_[0], 1) + std::rotl(acc_[1], 7) + std::rotl(acc_[2], 12) + std::rotl(acc_[3], 18);
    for (int i = 0; i < 4; ++i) h = MergeRound(h, acc_[i]);
  } else {
    h = kP5;
  }
  h += total_;
  const unsigned char* p = buffer_;
  std::size_t left = buffered_;
  for (; left >= 8; p += 8, left -= 8) h = std::rotl(h ^ Round(0, Read64(p)), 27) * kP1 + kP4;
  if (left >= 4) {
    h = std::rotl(h ^ (std::uint64_t{Read32(p)} * kP1), 23) * kP2 + kP3;
    p += 4;
    left -= 4;
  }
  for (; left > 0; ++p, --left) h = std::rotl(h ^ (*p * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::uint64_t Xxh64Of(std::string_view bytes) {
  Xxh64 hash;
  hash.Update(bytes);
  return hash.Digest();
}

std::string Hex64(std::uint64_t value) { return fmt::format("{:016x}", value); }

Result<FileDigest> DigestFile(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError("open " + path.string(), errno));
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buffer(std::size_t{1} << 20);
  Xxh64 hash;
  FileDigest digest;
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("read " + path.string(), errno));
    if (n == 0) break;
    hash.Update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    digest.size += static_cast<std::uint64_t>(n);
  }
  digest.checksum = "xxh64:" + Hex64(hash.Digest());
  return digest;
}

}  // namespace agentvm
