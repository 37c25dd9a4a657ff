#include "cli/tar_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "cli/tar_format.h"
#include "common/unique_fd.h"

namespace agentvm::cli::tar {
namespace {

constexpr std::size_t kReadBytes = 1 << 20;

Result<std::vector<std::string>> ListNames(int dir_fd, const std::string& shown) {
  // fdopendir takes the fd it is given: hand it a duplicate.
  int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return Fail(ErrnoError("read directory " + shown, errno));
  DIR* dir = ::fdopendir(copy);
  if (!dir) {
    int err = errno;
    ::close(copy);
    return Fail(ErrnoError("read directory " + shown, err));
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return Fail(ErrnoError("read directory " + shown, err));
  std::sort(names.begin(), names.end());
  return names;
}

class TreeWriter {
 public:
  TreeWriter(const std::string& root, const Sink& sink) : root_(root), sink_(sink), buffer_(kReadBytes, '\0') {}

  Result<void> Directory(int dir_fd, const std::string& prefix);
  WriteStats& stats() { return stats_; }

 private:
  Result<void> Entry(int dir_fd, const std::string& leaf, const std::string& name);
  Result<void> FileData(int dir_fd, const std::string& leaf, const std::string& name, Header header);
  std::string Shown(const std::string& name) const { return root_ + "/" + name; }

  const std::string& root_;
  const Sink& sink_;
  std::string buffer_;
  WriteStats stats_;
};

Result<void> TreeWriter::Directory(int dir_fd, const std::string& prefix) {
  auto names = ListNames(dir_fd, prefix.empty() ? root_ : Shown(prefix));
  if (!names) return Fail(names.error());
  for (const std::string& leaf : *names) {
    if (auto ok = Entry(dir_fd, leaf, prefix + leaf); !ok) return ok;
  }
  return {};
}

Result<void> TreeWriter::Entry(int dir_fd, const std::string& leaf, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir_fd, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Fail(ErrnoError("stat " + Shown(name), errno));
  }
  Header header{.name = name, .mode = static_cast<std::uint32_t>(st.st_mode & 07777), .mtime = st.st_mtime};
  if (S_ISREG(st.st_mode)) return FileData(dir_fd, leaf, name, std::move(header));
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlinkat(dir_fd, leaf.c_str(), target.data(), target.size());
    if (n < 0) return Fail(ErrnoError("readlink " + Shown(name), errno));
    target.resize(static_cast<std::size_t>(n));
    header.type = EntryType::kSymlink;
    header.link = std::move(target);
    ++stats_.entries;
    return sink_(EncodeHeader(header));
  }
  if (S_ISDIR(st.st_mode)) {
    header.type = EntryType::kDirectory;
    header.name += '/';
    ++stats_.entries;
    if (auto ok = sink_(EncodeHeader(header)); !ok) return ok;
    UniqueFd child(::openat(dir_fd, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) return Fail(ErrnoError("open directory " + Shown(name), errno));
    return Directory(child.get(), name + "/");
  }
  stats_.skipped.push_back(Shown(name));
  return {};
}

Result<void> TreeWriter::FileData(int dir_fd, const std::string& leaf, const std::string& name, Header header) {
  UniqueFd fd(::openat(dir_fd, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError("open " + Shown(name), errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Fail(ErrnoError("stat " + Shown(name), errno));
  header.size = static_cast<std::uint64_t>(st.st_size);
  ++stats_.entries;
  if (auto ok = sink_(EncodeHeader(header)); !ok) return ok;
  // Exactly header.size bytes go out, also if the file changes meanwhile:
  // what grew is cut, what shrank is padded with zeros.
  std::uint64_t left = header.size;
  while (left > 0) {
    ssize_t n = ::read(fd.get(), buffer_.data(), std::min<std::uint64_t>(left, buffer_.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("read " + Shown(name), errno));
    std::string_view piece(buffer_.data(), static_cast<std::size_t>(n));
    if (n == 0) {
      std::string zeros(std::min<std::uint64_t>(left, kReadBytes), '\0');
      if (auto ok = sink_(zeros); !ok) return ok;
      left -= zeros.size();
      continue;
    }
    if (auto ok = sink_(piece); !ok) return ok;
    left -= piece.size();
  }
  std::string padding(PaddingFor(header.size), '\0');
  if (padding.empty()) return {};
  return sink_(padding);
}

}  // namespace

Result<WriteStats> WriteTree(const std::string& dir, const Sink& sink) {
  UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Fail(ErrnoError(dir, errno));
  TreeWriter writer(dir, sink);
  if (auto ok = writer.Directory(root.get(), ""); !ok) return Fail(ok.error());
  // The end of the archive: two zero blocks.
  if (auto ok = sink(std::string(2 * kBlockBytes, '\0')); !ok) return Fail(ok.error());
  return std::move(writer.stats());
}

}  // namespace agentvm::cli::tar
