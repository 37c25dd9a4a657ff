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

class EgressByName : public DnsPolicy {
 public:
  explicit EgressByName(Firewall& firewall, EgressByNameOptions options = {});

  // Gives the VM (whose firewall rules have by_name) its list, replacing any
  // it had; `patterns` canonical (CanonicalDomainPatterns). Destinations
  // learned only from names the new list no longer admits are taken back at
  // once: new connections to them are refused.
  void SetList(Ipv4Address vm, const std::vector<std::string>& patterns);
  // Forgets the VM's list.
  void Remove(Ipv4Address vm);

  std::chrono::seconds Clamp(std::uint32_t ttl) const;

  const DomainList* ListFor(Ipv4Address vm) const override;
  Result<void> Learn(Ipv4Address vm, const std::string& name, std::span<const DnsAddress> addresses) override;
  // Hands every question to the sink (the per-VM egress log, VmNetwork's).
  void Record(const DnsQuestionRecord& record) override {
    if (question_sink_) question_sink_(record);
  }
  void SetQuestionSink(std::function<void(const DnsQuestionRecord&)> sink) { question_sink_ = std::move(sink); }

 private:
  // What one name taught a VM, until all of it has expired.
  struct Taught {
    std::set<Ipv4Address> destinations;
    std::chrono::steady_clock::time_point until;
  };
  struct VmPolicy {
    DomainList list;
    // Which name taught which destinations, so a list change can take back
    // exactly what only removed names admitted. Bounded like the learned set
    // itself (kMaxLearnedPerVm names): a guest asking for ever new names
    // under a wildcard must not grow the daemon.
    std::map<std::string, Taught> learned_from;
  };

  Firewall& firewall_;
  EgressByNameOptions options_;
  std::function<void(const DnsQuestionRecord&)> question_sink_;
  std::map<Ipv4Address, VmPolicy> vms_;
};

}  // namespace agentvm::net
