#include "guest-images/agent/file_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/unique_fd.h"

namespace agentvm::guest {
namespace {

std::unexpected<protocol::ErrorReply> Refuse(std::string_view code, const std::string& path,
                                             std::string_view why) {
  return std::unexpected(protocol::ErrorReply{std::string(code), path + ": " + std::string(why)});
}

std::unexpected<protocol::ErrorReply> ErrnoFailure(const std::string& path, int err) {
  return Refuse(CodeForErrno(err), path, std::strerror(err));
}

std::optional<std::unexpected<protocol::ErrorReply>> CheckPath(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return Refuse(protocol::kCodeInvalidArgument, path, "path must be absolute");
  }
  if (path.find('\0') != std::string::npos) {
    return Refuse(protocol::kCodeInvalidArgument, "path", "contains a NUL byte");
  }
  return std::nullopt;
}

std::optional<std::unexpected<protocol::ErrorReply>> CheckRegular(const std::string& path,
                                                                  const struct stat& st) {
  if (S_ISDIR(st.st_mode)) return Refuse(protocol::kCodeInvalidArgument, path, "is a directory");
  if (!S_ISREG(st.st_mode)) {
    return Refuse(protocol::kCodeInvalidArgument, path, "not a regular file");
  }
  return std::nullopt;
}

}  // namespace

std::string_view CodeForErrno(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return protocol::kCodeNotFound;
    case EISDIR:
    case EINVAL:
    case ENAMETOOLONG:
    case EACCES:
    case EPERM:
    case EROFS:
    case ELOOP:
    case EEXIST:
    case ETXTBSY:
    case EFBIG:
    case ENXIO:
      return protocol::kCodeInvalidArgument;
    default:
      return protocol::kCodeInternal;
  }
}

AgentResult<std::uint64_t> WriteFileChunk(const protocol::WriteFileRequest& request,
                                          std::string_view data) {
  const std::string& path = request.path;
  if (auto bad = CheckPath(path)) return *bad;
  struct stat st;
  // Checked before open(): opening a FIFO for writing could block.
  if (::stat(path.c_str(), &st) == 0) {
    if (auto bad = CheckRegular(path, st)) return *bad;
  }
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  if (request.truncate) flags |= O_TRUNC;
  UniqueFd fd(::open(path.c_str(), flags, request.mode.value_or(protocol::kDefaultFileMode)));
  if (!fd) return ErrnoFailure(path, errno);
  if (::fstat(fd.get(), &st) != 0) return ErrnoFailure(path, errno);
  if (auto bad = CheckRegular(path, st)) return *bad;
  // Explicit so the agent's umask does not decide the mode.
  if (request.mode && (st.st_mode & 07777) != *request.mode &&
      ::fchmod(fd.get(), *request.mode) != 0) {
    return ErrnoFailure(path, errno);
  }
  std::uint64_t offset = request.offset;
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd.get(), data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoFailure(path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  if (::fstat(fd.get(), &st) != 0) return ErrnoFailure(path, errno);
  if (::close(fd.release()) != 0) return ErrnoFailure(path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

AgentResult<FileChunk> ReadFileChunk(const protocol::ReadFileRequest& request, std::size_t headroom) {
  const std::string& path = request.path;
  if (auto bad = CheckPath(path)) return *bad;
  // O_NONBLOCK: a FIFO opens without waiting for a writer, then fstat refuses it.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return ErrnoFailure(path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoFailure(path, errno);
  if (auto bad = CheckRegular(path, st)) return *bad;

  FileChunk chunk;
  chunk.info.size = static_cast<std::uint64_t>(st.st_size);
  chunk.info.mode = st.st_mode & 07777;
  auto want = static_cast<std::size_t>(std::min(request.length, protocol::kMaxReadLength));
  // Not zero-filled: pread() overwrites it, and a memset is a copy's cost.
  chunk.bytes.resize_and_overwrite(headroom + want, [](char*, std::size_t n) { return n; });
  std::size_t got = 0;
  bool hit_end = false;
  while (got < want) {
    ssize_t n = ::pread(fd.get(), chunk.bytes.data() + headroom + got, want - got,
                        static_cast<off_t>(request.offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoFailure(path, errno);
    }
    if (n == 0) {
      hit_end = true;
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  chunk.bytes.resize(headroom + got);
  // Files such as /proc/* report size 0 yet have content: trust read()'s end
  // when the size says nothing.
  chunk.info.eof = hit_end || (st.st_size > 0 && request.offset + got >= chunk.info.size);
  return chunk;
}

}  // namespace agentvm::guest
