// EgressByName: the domain allowlists of the VMs that have one, and the
// bridge between the DNS forwarder and the firewall (issue 12). The forwarder
// asks it which names a VM may resolve and hands it the addresses of allowed
// answers; it writes them into the VM's learned set with a timeout of the
// record's TTL clamped to [min_ttl, max_ttl]:
//   - min_ttl (default 60 s): clients keep answers a little past their TTL
//     (Java 30 s, browsers up to 60 s); a zero-TTL answer must still be
//     usable for the connect that follows it.
//   - max_ttl (default 1 h): an address stays reachable at most this long
//     after the name moved away from it without being asked again.
// Keyed by the VM's address: two VMs never share what they learned.
// Threading: the forwarder's thread (the daemon's io thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "netsetup/dns_policy.h"
#include "netsetup/firewall.h"

namespace agentvm::net {

struct EgressByNameOptions {
  std::chrono::seconds min_ttl{60};
  std::chrono::seconds max_ttl{3600};
};

// What one VM's questions came to, for `inspect`.
struct DnsVerdictCounts {
  std::uint64_t allowed = 0;
  std::uint64_t refused = 0;  // not on the list, or a refused type
  std::uint64_t failed = 0;   // learning failed: SERVFAIL
};

class EgressByName : public DnsPolicy {
 public:
  explicit EgressByName(Firewall& firewall, EgressByNameOptions options = {});

  // Gives the VM (whose firewall rules have by_name) its list, replacing any
  // it had; `patterns` canonical (CanonicalDomainPatterns). Destinations
  // learned only from names the new list no longer admits are taken back at
  // once: new connections to them are refused.
  void SetList(Ipv4Address vm, const std::vector<std::string>& patterns);
  // Forgets the VM's list and counts.
  void Remove(Ipv4Address vm);

  // The names (lower case) whose answers taught the VM `destination`.
  std::vector<std::string> NamesOf(Ipv4Address vm, Ipv4Address destination) const;

  // Every question record also goes here (the egress log), if set.
  void SetRecordSink(std::function<void(const DnsQuestionRecord&)> sink) { sink_ = std::move(sink); }

  DnsVerdictCounts counts(Ipv4Address vm) const;
  std::chrono::seconds Clamp(std::uint32_t ttl) const;

  const DomainList* ListFor(Ipv4Address vm) const override;
  Result<void> Learn(Ipv4Address vm, const std::string& name, std::span<const DnsAddress> addresses) override;
  void Record(const DnsQuestionRecord& record) override;

 private:
  struct VmPolicy {
    DomainList list;
    DnsVerdictCounts counts;
    // Which name taught which destinations (until the list changes: expired
    // ones are not pruned, a name has a handful).
    std::map<std::string, std::set<Ipv4Address>> learned_from;
  };

  Firewall& firewall_;
  EgressByNameOptions options_;
  std::map<Ipv4Address, VmPolicy> vms_;
  std::function<void(const DnsQuestionRecord&)> sink_;
};

}  // namespace agentvm::net
