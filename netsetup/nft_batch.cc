#include "netsetup/nft_batch.h"

#include <libnftnl/common.h>
#include <linux/netlink.h>

#include <cstdlib>
#include <cstring>

namespace agentvm::net {
namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;

void AppendMessage(std::vector<std::uint8_t>& out, const nlmsghdr* nlh) {
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(nlh);
  out.insert(out.end(), bytes, bytes + NLMSG_ALIGN(nlh->nlmsg_len));
}

}  // namespace

NftMessage MakeNftMessage(std::uint16_t type, std::uint16_t family, std::uint16_t flags, std::string what,
                          const std::function<void(nlmsghdr*)>& build) {
  // libnftnl writes without bounds checks; the largest message we build (the
  // elements of one VM, whose counts validation caps) is a few KiB.
  thread_local std::vector<char> scratch(kMaxMessage);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(scratch.data(), type, family, flags, 0);
  build(nlh);
  if (nlh->nlmsg_len > kMaxMessage) std::abort();  // memory is already overwritten: stop
  NftMessage message{.type = type, .family = family, .what = std::move(what), .bytes = {}};
  AppendMessage(message.bytes, nlh);
  return message;
}

std::vector<std::uint8_t> NftBatch::Encode(std::uint32_t first_seq) const {
  std::vector<std::uint8_t> out;
  char edge[NLMSG_HDRLEN + 64];
  std::memset(edge, 0, sizeof edge);
  AppendMessage(out, nftnl_batch_begin(edge, first_seq));
  std::uint32_t seq = first_seq + 1;
  for (const NftMessage& message : messages_) {
    const std::size_t offset = out.size();
    out.insert(out.end(), message.bytes.begin(), message.bytes.end());
    auto* nlh = reinterpret_cast<nlmsghdr*>(out.data() + offset);
    nlh->nlmsg_seq = seq++;
    nlh->nlmsg_flags |= NLM_F_ACK;
  }
  std::memset(edge, 0, sizeof edge);
  AppendMessage(out, nftnl_batch_end(edge, seq));
  return out;
}

}  // namespace agentvm::net
