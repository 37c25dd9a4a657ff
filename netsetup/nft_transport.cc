#include "netsetup/nft_transport.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>

#include "netsetup/netlink_answer.h"

namespace agentvm::net {
namespace {

constexpr std::size_t kReceiveBuffer = 64 * 1024;
// The kernel answers a batch or a query inside our sendmsg() call, so
// replies are queued by the time we read; the timeout only guards against a
// kernel that doesn't.
constexpr int kReceiveTimeoutSeconds = 5;

Error KernelError(const std::string& what, int err) {
  ErrorCode code = ErrorCode::kInternal;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EEXIST || err == EBUSY || err == ENOTEMPTY) code = ErrorCode::kConflict;
  if (err == EINVAL || err == ERANGE) code = ErrorCode::kInvalidArgument;
  return Error{code, "nftables refused \"" + what + "\": " + std::strerror(err) + " (errno " +
                         std::to_string(err) + ")"};
}

class MnlTransport : public NftTransport {
 public:
  explicit MnlTransport(mnl_socket* socket)
      : socket_(socket), seq_(static_cast<std::uint32_t>(std::time(nullptr))) {}
  ~MnlTransport() override { mnl_socket_close(socket_); }

  Result<void> SendBatch(const NftBatch& batch) override {
    if (batch.empty()) return {};
    const std::uint32_t first = seq_;
    seq_ += static_cast<std::uint32_t>(batch.size()) + 2;
    const std::vector<std::uint8_t> bytes = batch.Encode(first);
    if (auto sent = Send(bytes); !sent) return Fail(sent.error());

    std::vector<bool> answered(batch.size(), false);
    std::size_t outstanding = batch.size();
    std::optional<std::pair<std::size_t, int>> first_error;  // message index, errno
    while (outstanding > 0) {
      // After a refusal the kernel may not answer every message; what it did
      // answer is already queued, so stop at the first empty read.
      const bool drain_only = first_error.has_value();
      std::vector<std::uint8_t> buffer(kReceiveBuffer);
      ssize_t got = ::recv(mnl_socket_get_fd(socket_), buffer.data(), buffer.size(), drain_only ? MSG_DONTWAIT : 0);
      if (got < 0) {
        if (drain_only && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          return Fail(ErrorCode::kTimeout, "nftables: the kernel answered " +
                                               std::to_string(batch.size() - outstanding) + " of " +
                                               std::to_string(batch.size()) + " messages");
        }
        return Fail(ErrnoError("nftables: receive", errno));
      }
      int len = static_cast<int>(got);
      for (auto* nlh = reinterpret_cast<nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, len);
           nlh = mnl_nlmsg_next(nlh, &len)) {
        if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq <= first) continue;
        const std::size_t index = nlh->nlmsg_seq - first - 1;
        if (index >= batch.size() || answered[index]) continue;
        answered[index] = true;
        --outstanding;
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        if (err->error != 0 && (!first_error || index < first_error->first)) first_error = {index, -err->error};
      }
    }
    if (first_error) return Fail(KernelError(batch.messages()[first_error->first].what, first_error->second));
    if (outstanding > 0) {
      return Fail(ErrorCode::kInternal, "nftables: no answer to " + std::to_string(outstanding) + " of " +
                                            std::to_string(batch.size()) + " messages");
    }
    return {};
  }

  Result<std::vector<std::vector<std::uint8_t>>> Query(const NftMessage& request) override {
    std::vector<std::uint8_t> bytes = request.bytes;
    auto* out = reinterpret_cast<nlmsghdr*>(bytes.data());
    const std::uint32_t seq = seq_++;
    out->nlmsg_seq = seq;
    const bool dump = (out->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    if (!dump) out->nlmsg_flags |= NLM_F_ACK;
    if (auto sent = Send(bytes); !sent) return Fail(sent.error());

    std::vector<std::vector<std::uint8_t>> replies;
    auto on_reply = [&](const nlmsghdr& nlh) {
      const auto* begin = reinterpret_cast<const std::uint8_t*>(&nlh);
      replies.emplace_back(begin, begin + nlh.nlmsg_len);
    };
    auto answer = AwaitNetlinkAnswer(
        mnl_socket_get_fd(socket_), seq, on_reply,
        {.what = "nftables \"" + request.what + "\"", .limit = std::chrono::seconds(kReceiveTimeoutSeconds)});
    if (!answer) return Fail(answer.error());
    if (*answer != 0) return Fail(KernelError(request.what, *answer));
    return replies;
  }

 private:
  Result<void> Send(const std::vector<std::uint8_t>& bytes) {
    ssize_t sent = mnl_socket_sendto(socket_, bytes.data(), bytes.size());
    if (sent < 0) return Fail(ErrnoError("nftables: send", errno));
    if (static_cast<std::size_t>(sent) != bytes.size()) {
      return Fail(ErrorCode::kInternal, "nftables: short send of a " + std::to_string(bytes.size()) + "-byte batch");
    }
    return {};
  }

  mnl_socket* socket_;
  std::uint32_t seq_;
};

}  // namespace

Result<std::unique_ptr<NftTransport>> OpenNftTransport() {
  mnl_socket* socket = mnl_socket_open(NETLINK_NETFILTER);
  if (socket == nullptr) return Fail(ErrnoError("nftables: open netlink socket", errno));
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(socket);
    return Fail(ErrnoError("nftables: bind netlink socket", err));
  }
  const int fd = mnl_socket_get_fd(socket);
  // Acks without a copy of the request, and room for one per message.
  int one = 1;
  (void)mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &one, sizeof one);
  int buffer = 4 * 1024 * 1024;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) < 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  }
  timeval timeout{.tv_sec = kReceiveTimeoutSeconds, .tv_usec = 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return std::unique_ptr<NftTransport>(std::make_unique<MnlTransport>(socket));
}

}  // namespace agentvm::net
