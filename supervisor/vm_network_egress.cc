// VmNetwork's side of the egress log: each nat-filtered VM's log, fed by the
// DNS forwarder's questions (through EgressByName) and the firewall's
// refused connections (through the NFLOG socket), and read by the API.
#include "netsetup/dns_policy.h"
#include "netsetup/egress_refused.h"
#include "supervisor/vm_network.h"

namespace agentvm {

void VmNetwork::Record(net::VmEgressLog* log, net::EgressEntry entry) {
  if (on_entry_) on_entry_(entry);
  if (log) log->Add(std::move(entry));
}

void VmNetwork::RecordQuestion(const net::DnsQuestionRecord& question) {
  auto log = egress_logs_.find(question.vm);
  net::EgressEntry entry{.kind = "dns", .name = question.name, .dns_type = question.type, .verdict = question.verdict};
  for (const net::DnsAddress& answer : question.answers) entry.answers.push_back(answer.address.ToString());
  // No log: a VM whose network is going; still counted.
  Record(log == egress_logs_.end() ? nullptr : log->second.get(), std::move(entry));
}

void VmNetwork::RecordRefused(const net::NflogPacket& packet) {
  // The bridge table pins each tap to its lease: a source address is a VM.
  auto log = egress_logs_.find(packet.source);
  if (log == egress_logs_.end()) return;  // not (or no longer) a VM of ours
  auto entry = net::RefusedConnectionEntry(packet, log->second->ring());
  if (entry) Record(log->second.get(), std::move(*entry));
}

const net::VmEgressLog* VmNetwork::EgressLogOf(const NetworkInfo& info) const {
  if (info.mode != NetworkMode::kNatFiltered) return nullptr;
  auto address = net::Ipv4Address::Parse(info.address);
  if (!address) return nullptr;
  auto log = egress_logs_.find(*address);
  return log == egress_logs_.end() ? nullptr : log->second.get();
}

std::vector<net::EgressEntry> VmNetwork::EgressEntries(const NetworkInfo& info, std::uint64_t after) const {
  const net::VmEgressLog* log = EgressLogOf(info);
  return log ? log->ring().Since(after) : std::vector<net::EgressEntry>{};
}

std::shared_ptr<net::EgressFollower> VmNetwork::FollowEgress(const NetworkInfo& info,
                                                             boost::asio::any_io_executor executor) {
  // The same log EgressLogOf finds; following is the one change a reader makes.
  auto* log = const_cast<net::VmEgressLog*>(EgressLogOf(info));
  return log ? log->Follow(std::move(executor)) : nullptr;
}

std::map<std::string, std::uint64_t> VmNetwork::DnsVerdicts(const NetworkInfo& info) const {
  const net::VmEgressLog* log = EgressLogOf(info);
  return log ? log->dns_verdicts() : std::map<std::string, std::uint64_t>{};
}

}  // namespace agentvm
