// nftables netlink messages and the batch that makes them one transaction.
// A batch is BATCH_BEGIN, the messages, BATCH_END: the kernel applies all of
// it or none of it. Messages are kept apart until encoding so tests (and
// error messages) can see each one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct nlmsghdr;

namespace agentvm::net {

struct NftMessage {
  std::uint16_t type = 0;    // NFT_MSG_*, without the subsystem byte
  std::uint16_t family = 0;  // NFPROTO_*
  std::string what;          // "add set inet agentvm vm_ports": names the message in errors
  std::vector<std::uint8_t> bytes;  // the whole netlink message; seq is set when encoded
};

// Builds one message: the nfnetlink header, then `build` appends the payload
// (an nftnl_*_nlmsg_build_payload call). `flags` are NLM_F_* besides REQUEST.
// The payload must stay under 64 KiB.
NftMessage MakeNftMessage(std::uint16_t type, std::uint16_t family, std::uint16_t flags, std::string what,
                          const std::function<void(nlmsghdr*)>& build);

class NftBatch {
 public:
  void Add(NftMessage message) { messages_.push_back(std::move(message)); }
  void Add(std::uint16_t type, std::uint16_t family, std::uint16_t flags, std::string what,
           const std::function<void(nlmsghdr*)>& build) {
    Add(MakeNftMessage(type, family, flags, std::move(what), build));
  }

  const std::vector<NftMessage>& messages() const { return messages_; }
  bool empty() const { return messages_.empty(); }
  std::size_t size() const { return messages_.size(); }

  // The bytes to send: BATCH_BEGIN with seq `first_seq`, message i with
  // NLM_F_ACK and seq first_seq + 1 + i, BATCH_END with the seq after that.
  std::vector<std::uint8_t> Encode(std::uint32_t first_seq) const;

 private:
  std::vector<NftMessage> messages_;
};

}  // namespace agentvm::net
