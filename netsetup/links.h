// Links of the calling thread's network namespace, through rtnetlink (libnl):
// the bridge the VMs hang off, and the few facts the daemon asks about links.
#pragma once

#include <string>

#include "common/error.h"
#include "netsetup/ipv4.h"

namespace agentvm::net {

// Makes `name` a bridge that is up and has gateway/prefix_length among its
// addresses. Creates the bridge when there is no link of that name (returns
// true: the caller owns it and deletes it later) and otherwise uses the one
// there (false). Fails with kConflict when `name` exists and is not a bridge.
// A bridge this call created has IPv6 disabled (VMs get none) and is deleted
// again if a later step fails.
Result<bool> EnsureBridge(const std::string& name, Ipv4Address gateway, int prefix_length);

// Deletes the link; kNotFound when there is none.
Result<void> DeleteLink(const std::string& name);

Result<bool> LinkExists(const std::string& name);

// VMs get no IPv6: the bridge and every tap get none of their own, so the
// host neither sends IPv6 to VMs nor accepts it on a tap's own stack.
// Logs (does not fail) when the sysctl cannot be written.
void DisableIpv6(const std::string& name);

// Writes 1 to /proc/sys/net/ipv4/ip_forward, which is per network namespace.
Result<void> EnableIpv4Forwarding();

}  // namespace agentvm::net
