// IpLeases: hands out the VMs' IPv4 addresses from the bridge subnet and
// records each in the state store's lease table, so an address is never given
// twice, even across daemon restarts. The gateway, the network and the
// broadcast address are never leased.
#pragma once

#include <string>

#include "common/error.h"
#include "netsetup/ipv4.h"
#include "supervisor/state_store.h"

namespace agentvm {

class IpLeases {
 public:
  IpLeases(StateStore& store, net::Ipv4Subnet subnet, net::Ipv4Address gateway)
      : store_(store), subnet_(subnet), gateway_(gateway) {}

  // The VM's address: its existing lease, else the lowest free address.
  // kUnavailable when the subnet is full.
  Result<net::Ipv4Address> Acquire(const std::string& vm_id);
  // Frees the VM's address; a VM without a lease is fine.
  Result<void> Release(const std::string& vm_id);

 private:
  StateStore& store_;
  net::Ipv4Subnet subnet_;
  net::Ipv4Address gateway_;
};

}  // namespace agentvm
