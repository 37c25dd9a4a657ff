// UniqueFd: the one owner of a file descriptor, closed when the owner goes,
// also when a coroutine holding it is destroyed mid-await. Header-only and
// POSIX-only, so the static guest agent (which links nothing of common/)
// shares it with the host.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace agentvm {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  // A close-on-exec duplicate of `fd`; invalid (and errno set) if `fd` is not open.
  static UniqueFd Duplicate(int fd) {
    if (fd < 0) {
      errno = EBADF;
      return UniqueFd();
    }
    return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives the fd up without closing it.
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace agentvm
