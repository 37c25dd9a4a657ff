#include "cli/tar_extractor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "cli/write_all.h"

namespace agentvm::cli::tar {
namespace {

bool IsExtended(EntryType type) {
  return type == EntryType::kGnuLongName || type == EntryType::kGnuLongLink || type == EntryType::kPaxHeader ||
         type == EntryType::kPaxGlobal;
}

std::string Joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : "/") + part;
  return out;
}

// Permission bits as the caller gets them: setuid and setgid never survive
// a copy out of a guest.
mode_t SafeMode(std::uint32_t mode) { return static_cast<mode_t>(mode & 01777); }

}  // namespace

Result<std::vector<std::string>> SplitEntryName(std::string_view name) {
  if (name.starts_with('/')) {
    return Fail(ErrorCode::kInvalidArgument, "refused archive entry " + QuoteForError(name) + ": an absolute name");
  }
  std::vector<std::string> parts;
  while (!name.empty()) {
    std::size_t slash = name.find('/');
    std::string_view part = name.substr(0, slash);
    name.remove_prefix(slash == std::string_view::npos ? name.size() : slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return Fail(ErrorCode::kInvalidArgument, "refused archive entry with \"..\" in its name");
    }
    parts.emplace_back(part);
  }
  return parts;
}

Result<void> Extractor::Open(const std::string& dir) {
  dir_ = dir;
  root_ = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_) return Fail(ErrnoError(dir, errno));
  return {};
}

Result<void> Extractor::Feed(std::string_view bytes) {
  while (!bytes.empty()) {
    switch (phase_) {
      case Phase::kEnd:
        return {};  // the zero blocks after the end
      case Phase::kHeader: {
        std::size_t take = std::min(kBlockBytes - block_.size(), bytes.size());
        block_.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        if (block_.size() < kBlockBytes) break;
        auto header = DecodeHeader(block_);
        block_.clear();
        if (!header) return Fail(header.error());
        if (!*header) {
          phase_ = Phase::kEnd;
          break;
        }
        if (auto ok = StartEntry(std::move(**header)); !ok) return ok;
        break;
      }
      case Phase::kData: {
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, bytes.size()));
        std::string_view piece = bytes.substr(0, take);
        bytes.remove_prefix(take);
        left_ -= take;
        if (IsExtended(current_->type)) {
          extended_.append(piece);
        } else if (file_ && !WriteAll(file_.get(), piece)) {
          return Fail(ErrnoError("write " + dir_ + "/" + current_->name, errno));
        }
        if (left_ == 0) {
          if (auto ok = EndData(); !ok) return ok;
        }
        break;
      }
      case Phase::kPadding: {
        std::size_t take = std::min(padding_, bytes.size());
        padding_ -= take;
        bytes.remove_prefix(take);
        if (padding_ == 0) phase_ = Phase::kHeader;
        break;
      }
    }
  }
  return {};
}

Result<void> Extractor::StartEntry(Header header) {
  if (!IsExtended(header.type)) {
    if (next_name_) header.name = *std::exchange(next_name_, std::nullopt);
    if (next_link_) header.link = *std::exchange(next_link_, std::nullopt);
  }
  current_ = header;
  left_ = header.size;
  padding_ = PaddingFor(header.size);
  extended_.clear();
  phase_ = Phase::kData;
  if (!IsExtended(header.type)) {
    auto parts = SplitEntryName(header.name);
    if (!parts) return Fail(parts.error());
    const std::string name = Joined(*parts);
    current_->name = name;
    ++stats_.entries;
    if (header.type == EntryType::kDirectory) {
      if (auto ok = MakeDirectory(*parts); !ok) return ok;
      if (!parts->empty()) directories_.push_back({name, header.mode, header.mtime});
    } else if (parts->empty()) {
      return Fail(ErrorCode::kInvalidArgument, "refused archive entry: a file without a name");
    } else if (header.type == EntryType::kFile || header.type == EntryType::kSymlink ||
               header.type == EntryType::kHardLink) {
      auto parent = OpenParent(*parts, true);
      if (!parent) return Fail(parent.error());
      const std::string& leaf = parts->back();
      if (auto ok = ClearLeaf(parent->get(), leaf, name); !ok) return ok;
      if (header.type == EntryType::kFile) {
        file_ = UniqueFd(::openat(parent->get(), leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                  0600));
        if (!file_) return Fail(ErrnoError("create " + dir_ + "/" + name, errno));
      } else if (header.type == EntryType::kSymlink) {
        if (::symlinkat(header.link.c_str(), parent->get(), leaf.c_str()) != 0) {
          return Fail(ErrnoError("symlink " + dir_ + "/" + name, errno));
        }
        timespec times[2] = {{0, UTIME_OMIT}, {header.mtime, 0}};
        ::utimensat(parent->get(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);  // best effort, like tar
      } else {
        // A hard link to an earlier entry: found the same careful way, and
        // linked without following it (a symlink is linked as itself).
        auto from = SplitEntryName(header.link);
        if (!from) return Fail(from.error());
        if (from->empty()) return Fail(ErrorCode::kInvalidArgument, "refused hard link to the archive's root");
        auto from_parent = OpenParent(*from, false);
        if (!from_parent) return Fail(from_parent.error());
        if (::linkat(from_parent->get(), from->back().c_str(), parent->get(), leaf.c_str(), 0) != 0) {
          return Fail(ErrnoError("link " + dir_ + "/" + name, errno));
        }
      }
    } else {
      stats_.skipped.push_back(name);
    }
  }
  if (left_ == 0) return EndData();
  return {};
}

Result<void> Extractor::EndData() {
  Header& header = *current_;
  switch (header.type) {
    case EntryType::kGnuLongName:
    case EntryType::kGnuLongLink: {
      std::string text = extended_.substr(0, extended_.find('\0'));
      (header.type == EntryType::kGnuLongName ? next_name_ : next_link_) = std::move(text);
      break;
    }
    case EntryType::kPaxHeader: {
      auto pax = ParsePax(extended_);
      if (!pax) return Fail(pax.error());
      if (pax->path) next_name_ = std::move(pax->path);
      if (pax->link) next_link_ = std::move(pax->link);
      break;
    }
    default:
      if (file_) {
        timespec times[2] = {{0, UTIME_OMIT}, {header.mtime, 0}};
        if (::fchmod(file_.get(), SafeMode(header.mode)) != 0 || ::futimens(file_.get(), times) != 0) {
          return Fail(ErrnoError("set mode and time of " + dir_ + "/" + header.name, errno));
        }
        // Closed by hand: a failing close can be the first sign of a lost write.
        if (::close(file_.release()) != 0) return Fail(ErrnoError("write " + dir_ + "/" + header.name, errno));
      }
      break;
  }
  extended_.clear();
  phase_ = padding_ > 0 ? Phase::kPadding : Phase::kHeader;
  return {};
}

Result<void> Extractor::Finish() {
  if (phase_ != Phase::kEnd) {
    return Fail(ErrorCode::kUnavailable, "the archive ended early: the copy is incomplete");
  }
  // Deepest first, so a directory's time is set after its children were made.
  for (auto it = directories_.rbegin(); it != directories_.rend(); ++it) {
    auto parts = SplitEntryName(it->name);
    if (!parts) return Fail(parts.error());
    auto parent = OpenParent(*parts, false);
    if (!parent) return Fail(parent.error());
    UniqueFd fd(::openat(parent->get(), parts->back().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    timespec times[2] = {{0, UTIME_OMIT}, {it->mtime, 0}};
    if (!fd || ::fchmod(fd.get(), SafeMode(it->mode)) != 0 || ::futimens(fd.get(), times) != 0) {
      return Fail(ErrnoError("set mode and time of " + dir_ + "/" + it->name, errno));
    }
  }
  return {};
}

Result<void> Extractor::MakeDirectory(const std::vector<std::string>& parts) {
  if (parts.empty()) return {};  // the target itself
  auto parent = OpenParent(parts, true);
  if (!parent) return Fail(parent.error());
  // Owner-writable until Finish gives it its own mode.
  if (::mkdirat(parent->get(), parts.back().c_str(), 0700) == 0) return {};
  int err = errno;
  struct stat st {};
  if (err == EEXIST && ::fstatat(parent->get(), parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    return {};
  }
  if (err == EEXIST) err = ENOTDIR;
  return Fail(ErrnoError("mkdir " + dir_ + "/" + Joined(parts), err));
}

Result<UniqueFd> Extractor::OpenParent(const std::vector<std::string>& parts, bool create) {
  UniqueFd at(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
  if (!at) return Fail(ErrnoError("dup", errno));
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    const char* part = parts[i].c_str();
    UniqueFd next(::openat(at.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next && errno == ENOENT && create && ::mkdirat(at.get(), part, 0755) == 0) {
      next = UniqueFd(::openat(at.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if (!next) {
      std::vector<std::string> so_far(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      std::string shown = dir_ + "/" + Joined(so_far);
      if (errno == ELOOP || errno == ENOTDIR) {
        return Fail(ErrorCode::kInvalidArgument,
                    "refused archive entry " + QuoteForError(Joined(parts)) + ": " + shown +
                        " is a symlink or not a directory (entries never go through symlinks)");
      }
      return Fail(ErrnoError(shown, errno));
    }
    at = std::move(next);
  }
  return at;
}

Result<void> Extractor::ClearLeaf(int parent, const std::string& leaf, const std::string& name) {
  struct stat st {};
  if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return Fail(ErrnoError(dir_ + "/" + name, errno));
  }
  if (S_ISDIR(st.st_mode)) return Fail(ErrnoError(dir_ + "/" + name, EISDIR));
  if (::unlinkat(parent, leaf.c_str(), 0) != 0) return Fail(ErrnoError("replace " + dir_ + "/" + name, errno));
  return {};
}

}  // namespace agentvm::cli::tar
