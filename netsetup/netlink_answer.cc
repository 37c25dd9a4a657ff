#include "netsetup/netlink_answer.h"

#include <libmnl/libmnl.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

namespace agentvm::net {
namespace {

// Big enough for any datagram the kernel sends (it builds them up to a page,
// or 16 KiB for dumps).
constexpr std::size_t kDatagramBytes = 64 * 1024;

}  // namespace

Result<int> AwaitNetlinkAnswer(int fd, std::uint32_t seq, const std::function<void(const nlmsghdr&)>& on_reply,
                               const NetlinkAnswerOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.limit;
  std::vector<std::uint8_t> buffer(kDatagramBytes);
  auto timed_out = [&] { return Fail(ErrorCode::kTimeout, "no answer to " + options.what); };
  for (;;) {
    // Checked on every datagram too: a socket busy with other messages never
    // times out by itself.
    if (std::chrono::steady_clock::now() >= deadline) return timed_out();
    const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (got < 0) {
      if (errno == EINTR || (errno == ENOBUFS && options.skip_overruns)) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return timed_out();
      return Fail(ErrnoError("receive the answer to " + options.what, errno));
    }
    int len = static_cast<int>(got);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_seq != seq) continue;
      if (nlh->nlmsg_type == NLMSG_DONE) return 0;
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
          return Fail(ErrorCode::kInternal, "a short ack to " + options.what);
        }
        return -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
      }
      on_reply(*nlh);
    }
  }
}

}  // namespace agentvm::net
