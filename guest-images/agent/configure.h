// The "configure" request as the agent applies it: a clone restored from a
// golden snapshot (or any booted guest) takes the identity the host gives it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "guest-images/agent/file_ops.h"
#include "guest-images/agent/guest_system.h"
#include "protocol/identity.h"

namespace agentvm::guest {

// The NIC the supervisor gives a guest (the only one; isolated VMs have none).
inline constexpr std::string_view kGuestInterface = "eth0";

// The `ip` argument lists that apply `network`, in order: MAC with the link
// down, link up, IPv4 addresses flushed and the new one added, default route.
std::vector<std::vector<std::string>> NetworkCommands(const protocol::GuestNetwork& network);

// Applies an identity ParseConfigure accepted, in this order: clock, entropy,
// host name, mounts, network (NetworkCommands, then /etc/resolv.conf). Stops at the
// first step that fails, with an error naming it
// ("configure: network: ip link set dev eth0 up: ..."); steps before it stay
// applied. Network goes last so a guest without a NIC still gets the rest.
AgentResult<void> ApplyIdentity(const protocol::GuestIdentity& identity, GuestSystem& system);

}  // namespace agentvm::guest
