#include "supervisor/memory_template.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

namespace agentvm {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPageBytes = 4096;
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

bool IsZeroPage(const char* page) {
  static const char kZeros[kPageBytes] = {};
  return std::memcmp(page, kZeros, kPageBytes) == 0;
}

Result<UniqueFd> SizedMemfd(const char* name, std::uint64_t bytes, unsigned int flags) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | flags));
  if (!fd) return Fail(ErrnoError("memfd_create", errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return Fail(ErrnoError("ftruncate memfd", errno));
  return fd;
}

// Copies all of `from` (read from offset 0 to its end) into `to`, which is
// already as long and all holes, writing only the pages that are not zero.
// Returns the digest of everything read.
Result<FileDigest> CopyLeavingHoles(int from, const std::string& from_name, int to, const std::string& to_name) {
  std::vector<char> buffer(kChunkBytes);
  Xxh64 hash;
  FileDigest digest;
  for (;;) {
    ssize_t got = ::pread(from, buffer.data(), buffer.size(), static_cast<off_t>(digest.size));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Fail(ErrnoError("read " + from_name, errno));
    if (got == 0) break;
    const auto n = static_cast<std::size_t>(got);
    hash.Update(std::string_view(buffer.data(), n));
    // Runs of non-zero pages, each written with one pwrite.
    for (std::size_t page = 0; page < n;) {
      if (n - page >= kPageBytes && IsZeroPage(buffer.data() + page)) {
        page += kPageBytes;
        continue;
      }
      std::size_t end = page + std::min(kPageBytes, n - page);
      while (end < n && !(n - end >= kPageBytes && IsZeroPage(buffer.data() + end))) {
        end += std::min(kPageBytes, n - end);
      }
      for (std::size_t done = page; done < end;) {
        ssize_t put = ::pwrite(to, buffer.data() + done, end - done, static_cast<off_t>(digest.size + done));
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return Fail(ErrnoError("write " + to_name, put < 0 ? errno : EIO));
        done += static_cast<std::size_t>(put);
      }
      page = end;
    }
    digest.size += n;
  }
  digest.checksum = "xxh64:" + Hex64(hash.Digest());
  return digest;
}

}  // namespace

Result<UniqueFd> GuestRamMemfd(std::uint64_t bytes) { return SizedMemfd("agentvm-guest-ram", bytes, 0); }

Result<UniqueFd> SharedCopyOfTemplate(const MemoryTemplate& source) {
  auto copy = GuestRamMemfd(source.size());
  if (!copy) return Fail(copy.error());
  auto copied = CopyLeavingHoles(source.fd(), "memory template", copy->get(), "guest RAM");
  if (!copied) return Fail(copied.error());
  return copy;
}

Result<FileDigest> WriteMemoryFile(int ram, const fs::path& path) {
  struct stat st {};
  if (::fstat(ram, &st) != 0) return Fail(ErrnoError("fstat guest RAM", errno));
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!file) return Fail(ErrnoError("create " + path.string(), errno));
  if (::ftruncate(file.get(), st.st_size) != 0) return Fail(ErrnoError("ftruncate " + path.string(), errno));
  auto digest = CopyLeavingHoles(ram, "guest RAM", file.get(), path.string());
  if (!digest) return Fail(digest.error());
  if (::fsync(file.get()) != 0) return Fail(ErrnoError("fsync " + path.string(), errno));
  return digest;
}

Result<std::shared_ptr<const MemoryTemplate>> LoadMemoryTemplate(const fs::path& path, std::uint64_t size,
                                                                 const std::string& checksum) {
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return Fail(ErrnoError("open " + path.string(), errno));
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) return Fail(ErrnoError("fstat " + path.string(), errno));
  if (static_cast<std::uint64_t>(st.st_size) != size) {
    return Fail(ErrorCode::kInvalidArgument, "memory is " + std::to_string(st.st_size) + " bytes, " +
                                                 std::to_string(size) + " recorded");
  }
  ::posix_fadvise(file.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  auto memfd = SizedMemfd("agentvm-memory-template", size, MFD_ALLOW_SEALING);
  if (!memfd) return Fail(memfd.error());
  auto digest = CopyLeavingHoles(file.get(), path.string(), memfd->get(), "memory template");
  if (!digest) return Fail(digest.error());
  if (digest->size != size || digest->checksum != checksum) {
    return Fail(ErrorCode::kInvalidArgument, "memory checksum " + digest->checksum + " does not match the recorded " +
                                                 checksum);
  }
  // F_SEAL_SEAL last: nobody, this process included, can lift the others.
  if (::fcntl(memfd->get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return Fail(ErrnoError("seal memory template", errno));
  }
  return std::make_shared<const MemoryTemplate>(std::move(*memfd), size);
}

}  // namespace agentvm
