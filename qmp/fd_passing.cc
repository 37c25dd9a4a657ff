#include "qmp/fd_passing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/error.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace agentvm::qmp {

boost::asio::awaitable<std::size_t> SendWithFd(UnixSocket& socket, std::string_view bytes,
                                               int fd, boost::system::error_code& ec) {
  ec.clear();
  for (;;) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

    // MSG_DONTWAIT keeps this independent of the socket's blocking mode;
    // MSG_NOSIGNAL turns a dead peer into EPIPE instead of SIGPIPE.
    ssize_t sent = ::sendmsg(socket.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0) co_return static_cast<std::size_t>(sent);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec.assign(errno, boost::system::system_category());
      co_return 0;
    }
    co_await socket.async_wait(UnixSocket::wait_write,
                               boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return 0;
  }
}

boost::asio::awaitable<std::size_t> ReceiveWithFds(UnixSocket& socket, std::span<char> buffer,
                                                   std::vector<UniqueFd>& fds,
                                                   boost::system::error_code& ec) {
  ec.clear();
  constexpr std::size_t kMaxFds = 16;
  for (;;) {
    iovec iov{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t got = ::recvmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got >= 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fds.emplace_back(fd);
        }
      }
      if (got == 0 && !buffer.empty()) ec = boost::asio::error::eof;
      co_return static_cast<std::size_t>(got);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec.assign(errno, boost::system::system_category());
      co_return 0;
    }
    co_await socket.async_wait(UnixSocket::wait_read,
                               boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return 0;
  }
}

}  // namespace agentvm::qmp
