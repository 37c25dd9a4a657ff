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

#include "common/unique_fd.h"

namespace agentvm::qmp {

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
                                                   std::vector<UniqueFd>& fds,
                                                   boost::system::error_code& ec);

}  // namespace agentvm::qmp
