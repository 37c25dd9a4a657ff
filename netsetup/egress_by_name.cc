#include "netsetup/egress_by_name.h"

#include <algorithm>
#include <iterator>

#include "common/logging.h"

namespace agentvm::net {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("dns"); }

}  // namespace

EgressByName::EgressByName(Firewall& firewall, EgressByNameOptions options)
    : firewall_(firewall), options_(options) {}

void EgressByName::SetList(Ipv4Address vm, const std::vector<std::string>& patterns) {
  VmPolicy& policy = vms_[vm];
  policy.list = DomainList(patterns);
  std::set<Ipv4Address> dropped;
  std::set<Ipv4Address> kept;
  for (auto it = policy.learned_from.begin(); it != policy.learned_from.end();) {
    if (policy.list.Admits(it->first)) {
      kept.insert(it->second.begin(), it->second.end());
      ++it;
    } else {
      dropped.insert(it->second.begin(), it->second.end());
      it = policy.learned_from.erase(it);
    }
  }
  std::vector<Ipv4Address> forget;
  std::set_difference(dropped.begin(), dropped.end(), kept.begin(), kept.end(), std::back_inserter(forget));
  firewall_.Forget(vm, forget);
}

std::vector<std::string> EgressByName::NamesOf(Ipv4Address vm, Ipv4Address destination) const {
  std::vector<std::string> names;
  auto it = vms_.find(vm);
  if (it == vms_.end()) return names;
  for (const auto& [name, destinations] : it->second.learned_from) {
    if (destinations.contains(destination)) names.push_back(name);
  }
  return names;
}

void EgressByName::Remove(Ipv4Address vm) { vms_.erase(vm); }

DnsVerdictCounts EgressByName::counts(Ipv4Address vm) const {
  auto it = vms_.find(vm);
  return it == vms_.end() ? DnsVerdictCounts{} : it->second.counts;
}

std::chrono::seconds EgressByName::Clamp(std::uint32_t ttl) const {
  return std::clamp(std::chrono::seconds(ttl), options_.min_ttl, options_.max_ttl);
}

const DomainList* EgressByName::ListFor(Ipv4Address vm) const {
  auto it = vms_.find(vm);
  return it == vms_.end() ? nullptr : &it->second.list;
}

Result<void> EgressByName::Learn(Ipv4Address vm, const std::string& name, std::span<const DnsAddress> addresses) {
  std::vector<ruleset::LearnedElement> elements;
  elements.reserve(addresses.size());
  for (const DnsAddress& address : addresses) {
    elements.push_back({.destination = address.address, .timeout = Clamp(address.ttl)});
  }
  auto learned = firewall_.Learn(vm, elements);
  if (!learned) {
    Log()->warn("{}: learning the addresses of {}: {}", vm.ToString(), name, learned.error().message);
    return learned;
  }
  if (auto it = vms_.find(vm); it != vms_.end()) {
    auto& destinations = it->second.learned_from[name];
    for (const DnsAddress& address : addresses) destinations.insert(address.address);
  }
  return learned;
}

void EgressByName::Record(const DnsQuestionRecord& record) {
  auto it = vms_.find(record.vm);
  if (it != vms_.end()) {
    DnsVerdictCounts& counts = it->second.counts;
    if (record.verdict == "allowed") {
      ++counts.allowed;
    } else if (record.verdict == "failed") {
      ++counts.failed;
    } else {
      ++counts.refused;
    }
  }
  if (sink_) sink_(record);
}

}  // namespace agentvm::net
