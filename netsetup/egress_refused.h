// What a refused packet the firewall logged (netsetup/nflog_socket.h)
// becomes in its VM's egress log. Pure: VmNetwork finds the VM by the
// packet's source address and hands its ring here.
#pragma once

#include <optional>

#include "netsetup/egress_log.h"
#include "netsetup/nflog_message.h"

namespace agentvm::net {

// The "refused" entry for `packet`: destination, port, protocol, verdict
// and the name whose allowed answer in `ring` last gave the destination.
// nullopt for a packet another log rule (another prefix) sent.
std::optional<EgressEntry> RefusedConnectionEntry(const NflogPacket& packet, const EgressRing& ring);

}  // namespace agentvm::net
