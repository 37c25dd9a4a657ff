#include "netsetup/nflog_socket.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "common/logging.h"
#include "common/unique_fd.h"
#include "netsetup/firewall_config.h"
#include "netsetup/netlink_answer.h"

namespace agentvm::net {
namespace {

std::unexpected<Error> Sys(const std::string& what) {
  return Fail(ErrorCode::kInternal, "NFLOG " + what + ": " + std::strerror(errno));
}

// Big enough for any datagram the kernel batches (it builds them up to a
// page or NFULA_CFG_NLBUFSIZ, 4 KiB by default).
constexpr std::size_t kDatagramBytes = 64 * 1024;
constexpr std::uint32_t kConfigSeq = 1;
constexpr std::chrono::seconds kBindAnswerLimit{5};

// One NFULNL_MSG_CONFIG: bind `group` to this socket, copy `snaplen` bytes
// of each packet.
std::vector<std::uint8_t> BindMessage(std::uint16_t group) {
  std::vector<std::uint8_t> buffer(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = kConfigSeq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(group);
  nfulnl_msg_config_cmd cmd{.command = NFULNL_CFG_CMD_BIND};
  mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof cmd, &cmd);
  nfulnl_msg_config_mode mode{};
  mode.copy_range = htonl(kRefusedLogSnaplen);
  mode.copy_mode = NFULNL_COPY_PACKET;
  mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof mode, &mode);
  // Each message at once (the kernel's default batches up to 100 for up to
  // a second): the log is read by people waiting for it.
  mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(1));
  buffer.resize(nlh->nlmsg_len);
  return buffer;
}

// Sends the bind and waits (at most kBindAnswerLimit) for its ack, skipping
// anything else that comes first (packets, if the log rule exists already).
Result<void> Bind(int fd, std::uint16_t group) {
  const std::vector<std::uint8_t> message = BindMessage(group);
  sockaddr_nl kernel{.nl_family = AF_NETLINK, .nl_pad = 0, .nl_pid = 0, .nl_groups = 0};
  if (::sendto(fd, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return Sys("bind group " + std::to_string(group));
  }
  timeval timeout{.tv_sec = kBindAnswerLimit.count(), .tv_usec = 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) return Sys("SO_RCVTIMEO");
  auto answer = AwaitNetlinkAnswer(fd, kConfigSeq, [](const nlmsghdr&) {},
                                   {.what = "the NFLOG bind of group " + std::to_string(group),
                                    .limit = kBindAnswerLimit,
                                    .skip_overruns = true});
  if (!answer) return Fail(answer.error());
  if (*answer == EBUSY) {
    return Fail(ErrorCode::kConflict,
                "NFLOG group " + std::to_string(group) + " is taken by another process in this network namespace");
  }
  if (*answer != 0) {
    errno = *answer;
    return Sys("bind group " + std::to_string(group));
  }
  return {};
}

}  // namespace

struct NflogSocket::State : std::enable_shared_from_this<State> {
  State(boost::asio::any_io_executor executor, int fd, Handler on_packet)
      : descriptor(std::move(executor), fd), handler(std::move(on_packet)), buffer(kDatagramBytes) {}

  // One datagram per read; asio retries the read itself when the socket
  // becomes readable, so no wakeup is missed between two reads.
  void Read() {
    descriptor.async_read_some(boost::asio::buffer(buffer), [self = shared_from_this()](
                                                                 const boost::system::error_code& error, std::size_t got) {
      if (!self->handler) return;  // closed: the socket is gone
      if (error == boost::asio::error::no_buffer_space) {
        if (self->stats.overruns++ == 0) Logger("network")->warn("NFLOG: the kernel dropped refused-connection messages");
      } else if (error) {
        Logger("network")->error("NFLOG: {}; refused connections are no longer logged", error.message());
        return;
      } else {
        self->Handle(got);
      }
      self->Read();
    });
  }

  void Handle(std::size_t got) {
    int len = static_cast<int>(got);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type == NLMSG_DONE) continue;  // the end of a batch
      auto parsed = ParseNflogMessage({reinterpret_cast<const std::uint8_t*>(nlh), nlh->nlmsg_len});
      if (!parsed) {
        if (stats.malformed++ == 0) Logger("network")->warn("{} (type {:#x})", parsed.error().message, nlh->nlmsg_type);
        continue;
      }
      ++stats.packets;
      handler(*parsed);
    }
  }

  boost::asio::posix::stream_descriptor descriptor;
  Handler handler;
  std::vector<std::uint8_t> buffer;
  NflogStats stats;
};

Result<std::unique_ptr<NflogSocket>> NflogSocket::Open(boost::asio::any_io_executor executor, std::uint16_t group,
                                                       Handler handler) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd.valid()) return Sys("socket");
  // SO_RCVBUF, not SO_RCVBUFFORCE: the cap stays within the host's rmem_max.
  const int bytes = kNflogReceiveBufferBytes;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) return Sys("SO_RCVBUF");
  sockaddr_nl local{.nl_family = AF_NETLINK, .nl_pad = 0, .nl_pid = 0, .nl_groups = 0};
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return Sys("bind");
  if (auto bound = Bind(fd.get(), group); !bound) return Fail(bound.error());
  auto state = std::make_shared<State>(std::move(executor), fd.release(), std::move(handler));
  state->descriptor.non_blocking(true);
  state->Read();
  return std::unique_ptr<NflogSocket>(new NflogSocket(std::move(state)));
}

NflogSocket::NflogSocket(std::shared_ptr<State> state) : state_(std::move(state)) {}

NflogSocket::~NflogSocket() {
  state_->handler = nullptr;
  boost::system::error_code ignored;
  state_->descriptor.close(ignored);  // the kernel unbinds the group with the socket
}

const NflogStats& NflogSocket::stats() const { return state_->stats; }

}  // namespace agentvm::net
