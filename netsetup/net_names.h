// Names the network derives from other facts: a VM's tap from its id, a NIC's
// MAC address from its lease. Pure functions, no OS access.
#pragma once

#include <string>
#include <string_view>

#include "netsetup/ipv4.h"

namespace agentvm::net {

// Every VM tap's name starts with this; the firewall matches it.
inline constexpr char kTapPrefix[] = "avm-";

// "avm-" + 11 lowercase hex digits of a stable 64-bit FNV-1a hash of the id:
// always a valid interface name (15 characters, the kernel's maximum) and the
// same for the same id across daemon restarts, whatever characters the id has.
std::string TapNameForVm(std::string_view vm_id);

// "02:00:" + the four address bytes in hex: locally administered, unicast, and
// unique per lease, so a VM's MAC follows from its address.
std::string MacForAddress(Ipv4Address address);

// The kernel's rule for interface names (dev_valid_name): 1 to 15 bytes, not
// "." or "..", no '/', ':' or whitespace. We also refuse anything outside
// [A-Za-z0-9_.-], so a name is always safe to print and to pass to tools.
bool IsValidLinkName(std::string_view name);

// Parses "aa:bb:cc:dd:ee:ff" (either case); false when malformed.
bool ParseMac(std::string_view text, unsigned char out[6]);

}  // namespace agentvm::net
