#include "supervisor/ip_leases.h"

#include <algorithm>
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
  // Host indexes 1 .. size-2: not the network (0), not the broadcast address.
  const std::uint64_t first = 1;
  const std::uint64_t count = subnet_.Size() > 2 ? subnet_.Size() - 2 : 0;
  if (!next_) {
    next_ = first;
    for (net::Ipv4Address address : taken) {
      if (subnet_.Contains(address)) next_ = std::max<std::uint64_t>(*next_, address.value - subnet_.network.value + 1);
    }
  }
  // Linear in the size of the subnet at worst, which holds at most a few
  // thousand VMs.
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t n = first + (*next_ - first + i) % count;
    net::Ipv4Address candidate = *subnet_.At(n);
    if (candidate == gateway_ || taken.contains(candidate)) continue;
    if (auto put = store_.PutLease({candidate.ToString(), vm_id}); !put) return Fail(put.error());
    next_ = n + 1;
    return candidate;
  }
  return Fail(ErrorCode::kUnavailable, "no free address left in " + subnet_.ToString());
}

Result<std::optional<net::Ipv4Address>> IpLeases::Release(const std::string& vm_id) {
  auto leases = store_.ListLeases();
  if (!leases) return Fail(leases.error());
  std::optional<net::Ipv4Address> released;
  for (const LeaseRecord& lease : *leases) {
    if (lease.vm_id != vm_id) continue;
    if (auto address = net::Ipv4Address::Parse(lease.address)) released = *address;
  }
  if (auto deleted = store_.DeleteLease(vm_id); !deleted) return Fail(deleted.error());
  return released;
}

}  // namespace agentvm
