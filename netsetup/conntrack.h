// The kernel's connection tracking table of the calling thread's network
// namespace, through ctnetlink (libnetfilter_conntrack).
//
// Why the daemon touches it: NAT and the firewall's "established" rule go by
// conntrack entries, which outlive the VM that made them. A VM that is removed
// (or stopped) leaves entries keyed by its address; the next VM given that
// address would receive the old VM's flows (replies, and packets a server
// sends on a connection the old VM opened). Forgetting them when the address
// leaves the VM closes that door.
#pragma once

#include <cstddef>

#include "common/error.h"
#include "netsetup/ipv4.h"

namespace agentvm::net {

// Deletes every IPv4 entry whose original source or destination is `address`
// and returns how many went. Entries that vanish on their own meanwhile are
// not an error. Linear in the size of the table: it is read once.
Result<std::size_t> ForgetConnections(Ipv4Address address);

}  // namespace agentvm::net
