#include "supervisor/ip_leases.h"

#include <set>

namespace agentvm {

Result<net::Ipv4Address> IpLeases::Acquire(const std::string& vm_id) {
  auto leases = store_.ListLeases();
  if (!leases) return Fail(leases.error());
  std::set<net::Ipv4Address> taken;
  for (const LeaseRecord& lease : *leases) {
    auto address = net::Ipv4Address::Parse(lease.address);
    if (!address) continue;  // not ours to interpret; never reused either way
    if (lease.vm_id == vm_id) return *address;
    taken.insert(*address);
  }
  // Linear in the number of leases, which is at most a few thousand VMs.
  for (std::uint64_t n = 1; n + 1 < subnet_.Size(); ++n) {
    net::Ipv4Address candidate = *subnet_.At(n);
    if (candidate == gateway_ || taken.contains(candidate)) continue;
    if (auto put = store_.PutLease({candidate.ToString(), vm_id}); !put) return Fail(put.error());
    return candidate;
  }
  return Fail(ErrorCode::kUnavailable, "no free address left in " + subnet_.ToString());
}

Result<void> IpLeases::Release(const std::string& vm_id) { return store_.DeleteLease(vm_id); }

}  // namespace agentvm
