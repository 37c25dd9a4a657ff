#include "netsetup/egress_refused.h"

#include "netsetup/firewall_config.h"

namespace agentvm::net {

std::optional<EgressEntry> RefusedConnectionEntry(const NflogPacket& packet, const EgressRing& ring) {
  if (packet.prefix != kRefusedLogPrefix) return std::nullopt;
  const std::string destination = packet.destination.ToString();
  return EgressEntry{.kind = "refused",
                     .verdict = "refused",
                     .destination = destination,
                     .port = packet.port,
                     .protocol = ProtocolName(packet.protocol),
                     .learned_from = ring.NameAnswering(destination)};
}

}  // namespace agentvm::net
