// Passing file descriptors over a unix stream socket (SCM_RIGHTS), the way
// QMP's `getfd` and `add-fd` expect them: the fd travels in the same sendmsg()
// as the first bytes of the command that names it.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/system/error_code.hpp>

namespace agentvm::qmp {

// A move-only owned file descriptor; closes it on destruction.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.Release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { Reset(); }

  // A close-on-exec duplicate of `fd`; invalid (and errno set) if `fd` is not open.
  static OwnedFd Duplicate(int fd);

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

using UnixSocket = boost::asio::local::stream_protocol::socket;

// Sends a prefix of `bytes` (at least one byte unless `ec` is set) with `fd`
// attached. Returns how many bytes went out; the caller writes the rest with
// ordinary writes. Waits while the socket is full.
boost::asio::awaitable<std::size_t> SendWithFd(UnixSocket& socket, std::string_view bytes,
                                               int fd, boost::system::error_code& ec);

// Receives what is available into `buffer` (waiting while there is nothing),
// appending any fds that came along to `fds` (close-on-exec; the caller owns
// them). Returns 0 and sets ec to asio::error::eof at end of stream.
boost::asio::awaitable<std::size_t> ReceiveWithFds(UnixSocket& socket, std::span<char> buffer,
                                                   std::vector<OwnedFd>& fds,
                                                   boost::system::error_code& ec);

}  // namespace agentvm::qmp
