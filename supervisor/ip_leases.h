// IpLeases: hands out the VMs' IPv4 addresses from the bridge subnet and
// records each in the state store's lease table, so an address is never given
// twice, even across daemon restarts. The gateway, the network and the
// broadcast address are never leased.
//
// Addresses are handed out in turn around the subnet, not lowest-free: a
// released address is the last one given again, so the kernel's leftovers
// keyed by it (conntrack entries, neighbour entries, a peer's open flows)
// have the whole cycle to expire. VmNetwork also forgets the address's
// conntrack entries when it leaves a VM; the order is the second fence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/error.h"
#include "netsetup/ipv4.h"
#include "supervisor/state_store.h"

namespace agentvm {

class IpLeases {
 public:
  IpLeases(StateStore& store, net::Ipv4Subnet subnet, net::Ipv4Address gateway)
      : store_(store), subnet_(subnet), gateway_(gateway) {}

  // The VM's address: its existing lease, else the next free address after
  // the one handed out last (wrapping around). kUnavailable when the subnet
  // is full.
  Result<net::Ipv4Address> Acquire(const std::string& vm_id);
  // Frees the VM's address and returns it; nullopt for a VM without a lease.
  Result<std::optional<net::Ipv4Address>> Release(const std::string& vm_id);

 private:
  StateStore& store_;
  net::Ipv4Subnet subnet_;
  net::Ipv4Address gateway_;
  // Index in the subnet where the next search starts. In memory only: a
  // restarted daemon starts after the highest address leased.
  std::optional<std::uint64_t> next_;
};

}  // namespace agentvm
