// DnsPolicy: what the DNS forwarder asks about the queries of VMs that may
// resolve only some names (issue 12). The forwarder knows nothing of VMs:
// it asks by source address. EgressByName (egress_by_name.h) is the real one;
// unit tests use fakes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "netsetup/dns_message.h"
#include "netsetup/domain_list.h"
#include "netsetup/ipv4.h"

namespace agentvm::net {

// One question a domain-filtered VM asked, as the egress log keeps it.
struct DnsQuestionRecord {
  Ipv4Address vm;
  std::string name;
  std::uint16_t type = 0;
  // "allowed" (relayed, its addresses learned), "refused" (not on the list:
  // never sent upstream), "refused-type" (a type other than A, AAAA, CNAME,
  // HTTPS, SVCB), "failed" (learning failed: the guest got SERVFAIL).
  std::string verdict;
  std::vector<DnsAddress> answers;  // what was learned (allowed only)
};

class DnsPolicy {
 public:
  virtual ~DnsPolicy() = default;

  // The names the VM at `vm` may resolve; nullptr when it has no list (its
  // queries are relayed as they are, nothing is learned).
  virtual const DomainList* ListFor(Ipv4Address vm) const = 0;

  // Called with the addresses an answer to an allowed question gives, before
  // the answer is relayed: on success the VM may connect to them. An error
  // makes the forwarder answer SERVFAIL instead.
  virtual Result<void> Learn(Ipv4Address vm, const std::string& name, std::span<const DnsAddress> addresses) = 0;

  // Every question of a VM with a list, once its verdict is known.
  virtual void Record(const DnsQuestionRecord& record) = 0;
};

}  // namespace agentvm::net
