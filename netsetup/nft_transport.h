// The seam between the firewall and the kernel: everything nftables-related
// goes through NftTransport, so unit tests see the exact batches the firewall
// sends (a fake) and privileged tests and the daemon talk to the kernel
// (OpenNftTransport).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/error.h"
#include "netsetup/nft_batch.h"

namespace agentvm::net {

class NftTransport {
 public:
  virtual ~NftTransport() = default;

  // Sends the batch as one transaction and collects the kernel's answer to
  // every message in it. Either every message took effect or none did; the
  // error names the first message the kernel refused and its reason.
  virtual Result<void> SendBatch(const NftBatch& batch) = 0;

  // Sends one request outside a batch (a GET, or a dump with NLM_F_DUMP) and
  // returns the reply messages, whole, without the final ACK or NLMSG_DONE.
  // An object that does not exist is kNotFound.
  virtual Result<std::vector<std::vector<std::uint8_t>>> Query(const NftMessage& request) = 0;
};

// A netfilter netlink socket (libmnl) in the calling thread's network
// namespace; it stays in that namespace whichever thread uses it later.
Result<std::unique_ptr<NftTransport>> OpenNftTransport();

}  // namespace agentvm::net
