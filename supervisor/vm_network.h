// VmNetwork: the daemon's side of the VMs' network (docs/network.md). It owns
// the bridge (when it made it), the nftables tables, the DNS forwarder on the
// bridge address and the lease table, and hands each VM a NetAttachment: its
// tap, address and firewall entries, all removed when the attachment goes.
//
// Nothing is built until the first VM with a NIC needs it, so a daemon whose
// VMs are all isolated never touches the host's network.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/udp.hpp>

#include "common/error.h"
#include "protocol/identity.h"
#include "netsetup/egress_log.h"
#include "netsetup/ipv4.h"
#include "supervisor/config.h"
#include "supervisor/ip_leases.h"
#include "supervisor/network_update.h"
#include "supervisor/state_store.h"
#include "supervisor/vm_types.h"

namespace agentvm {
namespace net {
struct DnsQuestionRecord;
struct NflogPacket;
class EgressByName;
class Firewall;
class NflogSocket;
class Tap;
}  // namespace net
class DnsForwarder;
class VmNetwork;

// One VM's place on the network. Owned by its Vm. If the VmNetwork is gone
// first (daemon shutdown), its tables are gone too and only the tap closes.
class NetAttachment {
 public:
  ~NetAttachment();
  NetAttachment(const NetAttachment&) = delete;
  NetAttachment& operator=(const NetAttachment&) = delete;

  const NetworkInfo& info() const { return info_; }
  // The tap to hand to QEMU; -1 when the VM has no NIC (isolated).
  int tap_fd() const;
  // What the guest's init applies at boot (agentvm.ip=… or agentvm.net=dhcp).
  std::string KernelArgs() const;
  // What a restored clone's agent applies to make this attachment its own
  // (address, MAC, route, resolver); nullopt when the VM has no static
  // address to take (isolated, or bridge mode's DHCP).
  std::optional<protocol::GuestNetwork> GuestConfig() const;
  // Changes a nat-filtered VM's egress policy live (VmNetwork::Update).
  Result<void> Update(const NetworkUpdate& update);

 private:
  friend class VmNetwork;
  NetAttachment(std::weak_ptr<VmNetwork> owner, std::string vm_id, NetworkInfo info);

  std::weak_ptr<VmNetwork> owner_;
  int prefix_length_ = 32;
  std::string vm_id_;
  NetworkInfo info_;
  std::unique_ptr<net::Tap> tap_;
  bool has_rules_ = false;
};

class VmNetwork : public std::enable_shared_from_this<VmNetwork> {
 public:
  VmNetwork(boost::asio::any_io_executor executor, const DaemonConfig& config, StateStore& store);
  ~VmNetwork();

  // Removes what an earlier daemon left behind: the links it recorded as its
  // own and our nftables tables. Taps vanish by themselves with their fds.
  // With `keep_bridge` (VMs are being adopted: their taps are on it) the
  // bridge stays and is this daemon's from now on; the tables still go and
  // are built afresh, with the adopted VMs' elements (Readopt).
  Result<void> RemoveLeftovers(bool keep_bridge = false);

  // The attachment of a VM an earlier daemon attached and this one adopts:
  // the lease is still in the store, the tap still held open by the VM's
  // QEMU; its firewall elements are added to the fresh tables.
  Result<std::unique_ptr<NetAttachment>> Readopt(const std::string& vm_id, const NetworkInfo& info);

  // Resolves the mode (the daemon default when unset), checks the request
  // against it, leases an address and builds the tap and its rules. On error
  // nothing is left behind.
  Result<std::unique_ptr<NetAttachment>> Attach(const std::string& vm_id, const NetworkRequest& request);

  Result<void> ReleaseLease(const std::string& vm_id);

  // New outbound connections the whitelist dropped for this VM.
  std::uint64_t DroppedConnections(const NetworkInfo& info) const;
  // A nat-filtered VM's egress log while its network is attached
  // (docs/network.md, "The egress log"): the entries kept after `after`, and
  // its DNS questions by verdict. Empty for any other VM.
  std::vector<net::EgressEntry> EgressEntries(const NetworkInfo& info, std::uint64_t after) const;
  std::map<std::string, std::uint64_t> DnsVerdicts(const NetworkInfo& info) const;
  // Every later entry of that log (VmEgressLog::Follow) until the VM's
  // network goes; null for a VM without one.
  std::shared_ptr<net::EgressFollower> FollowEgress(const NetworkInfo& info, boost::asio::any_io_executor executor);
  // Called with every egress log entry of any VM, DNS question or refused
  // connection (the metrics').
  void OnEgressEntry(std::function<void(const net::EgressEntry&)> observer) { on_entry_ = std::move(observer); }

  // Removes the tables, the DNS forwarder and the bridge we created. VMs must
  // be gone (their attachments destroyed) first.
  void Shutdown();

 private:
  friend class NetAttachment;
  Result<void> EnsureStarted();
  Result<boost::asio::ip::udp::endpoint> DnsUpstream() const;
  Result<void> StartFilteringAndDns(const boost::asio::ip::udp::endpoint& upstream);
  Result<void> AttachFiltered(NetAttachment& attachment, const NetworkRequest& request);
  Result<void> AttachBridged(NetAttachment& attachment, const NetworkRequest& request);
  Result<void> AddRules(NetAttachment& attachment, net::Ipv4Address address);
  // The checks of a create request, then the firewall's elements in one
  // batch and the domain list; the attachment's info on success only.
  Result<void> Update(NetAttachment& attachment, const NetworkUpdate& update);
  void Detach(NetAttachment& attachment);
  void RecordQuestion(const net::DnsQuestionRecord& question);
  void RecordRefused(const net::NflogPacket& packet);
  void Record(net::VmEgressLog* log, net::EgressEntry entry);
  const net::VmEgressLog* EgressLogOf(const NetworkInfo& info) const;

  boost::asio::any_io_executor executor_;
  const DaemonConfig& config_;
  StateStore& store_;
  net::Ipv4Subnet subnet_;
  net::Ipv4Address gateway_;
  IpLeases leases_;
  bool started_ = false;
  bool created_bridge_ = false;
  bool adopt_bridge_ = false;  // RemoveLeftovers kept an earlier daemon's bridge
  std::unique_ptr<net::Firewall> firewall_;
  // Declared after firewall_ and before dns_: the forwarder asks it, it
  // writes into the firewall, so it goes after the one and before the other.
  std::unique_ptr<net::EgressByName> egress_;
  std::unique_ptr<DnsForwarder> dns_;
  // Refused connections from the firewall's log rule; goes first, as its
  // handler writes into egress_logs_.
  std::unique_ptr<net::NflogSocket> nflog_;
  // Each attached nat-filtered VM's egress log, by its address (what the
  // forwarder knows a VM by); made with its rules, gone with them.
  std::map<net::Ipv4Address, std::unique_ptr<net::VmEgressLog>> egress_logs_;
  std::function<void(const net::EgressEntry&)> on_entry_;
};

// The network part of a VM's state-store record, and back: the API's
// "network" object (supervisor/api/json_codec.h), one format for both.
std::string NetworkInfoToRecord(const NetworkInfo& info);
NetworkInfo NetworkInfoFromRecord(const std::string& record);

}  // namespace agentvm
