// VmNetwork's side of the egress log: each nat-filtered VM's log, fed by the
// DNS forwarder's questions (through EgressByName) and read by the API.
#include "netsetup/dns_policy.h"
#include "supervisor/vm_network.h"

namespace agentvm {

void VmNetwork::RecordQuestion(const net::DnsQuestionRecord& question) {
  if (on_question_) on_question_(question.verdict);
  auto log = egress_logs_.find(question.vm);
  if (log == egress_logs_.end()) return;  // a VM whose network is going
  net::EgressEntry entry{.kind = "dns", .name = question.name, .dns_type = question.type, .verdict = question.verdict};
  for (const net::DnsAddress& answer : question.answers) entry.answers.push_back(answer.address.ToString());
  log->second->Add(std::move(entry));
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

std::map<std::string, std::uint64_t> VmNetwork::DnsVerdicts(const NetworkInfo& info) const {
  const net::VmEgressLog* log = EgressLogOf(info);
  return log ? log->dns_verdicts() : std::map<std::string, std::uint64_t>{};
}

}  // namespace agentvm
