// One way to wait for the kernel's answer to a netlink request (nftables'
// queries, the NFLOG socket's bind): read until the message that ends the
// answer to `seq`, skipping what is not part of it, within a time limit so
// a kernel that never answers cannot hang the daemon.
#pragma once

#include <linux/netlink.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/error.h"

namespace agentvm::net {

struct NetlinkAnswerOptions {
  // Named in errors ("nftables: no answer to <what>").
  std::string what;
  // How long the whole answer may take; the socket needs a receive timeout
  // (SO_RCVTIMEO) no longer than this, or a silent kernel blocks one recv.
  std::chrono::milliseconds limit{5000};
  // Skip receive-buffer overruns (ENOBUFS): on a socket that also carries
  // unrelated messages (NFLOG packets) they are not part of the answer.
  bool skip_overruns = false;
};

// Reads `fd` until the answer to request `seq` ends: with NLMSG_DONE (0) or
// an ack (NLMSG_ERROR: its errno, 0 for success). Each other message of
// that seq goes to `on_reply` whole; messages of other seqs are skipped.
// kTimeout once the limit passes without the end.
Result<int> AwaitNetlinkAnswer(int fd, std::uint32_t seq, const std::function<void(const nlmsghdr&)>& on_reply,
                               const NetlinkAnswerOptions& options);

}  // namespace agentvm::net
