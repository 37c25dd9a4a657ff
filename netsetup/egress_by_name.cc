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
      kept.insert(it->second.destinations.begin(), it->second.destinations.end());
      ++it;
    } else {
      dropped.insert(it->second.destinations.begin(), it->second.destinations.end());
      it = policy.learned_from.erase(it);
    }
  }
  std::vector<Ipv4Address> forget;
  std::set_difference(dropped.begin(), dropped.end(), kept.begin(), kept.end(), std::back_inserter(forget));
  firewall_.Forget(vm, forget);
}

void EgressByName::Remove(Ipv4Address vm) { vms_.erase(vm); }

std::chrono::seconds EgressByName::Clamp(std::uint32_t ttl) const {
  return std::clamp(std::chrono::seconds(ttl), options_.min_ttl, options_.max_ttl);
}

const DomainList* EgressByName::ListFor(Ipv4Address vm) const {
  auto it = vms_.find(vm);
  return it == vms_.end() ? nullptr : &it->second.list;
}

Result<void> EgressByName::Learn(Ipv4Address vm, const std::string& name, std::span<const DnsAddress> addresses) {
  auto policy = vms_.find(vm);
  if (policy == vms_.end()) return Fail(ErrorCode::kNotFound, vm.ToString() + " has no domain list");
  auto& learned_from = policy->second.learned_from;
  const auto now = std::chrono::steady_clock::now();
  if (!learned_from.contains(name) && learned_from.size() >= kMaxLearnedPerVm) {
    std::erase_if(learned_from, [&](const auto& entry) { return entry.second.until <= now; });
    if (learned_from.size() >= kMaxLearnedPerVm) {
      return Fail(ErrorCode::kTooLarge, vm.ToString() + " has learned from " + std::to_string(learned_from.size()) +
                                            " names; at most " + std::to_string(kMaxLearnedPerVm) + " may be alive");
    }
  }
  std::vector<ruleset::LearnedElement> elements;
  elements.reserve(addresses.size());
  std::chrono::milliseconds longest{0};
  for (const DnsAddress& address : addresses) {
    elements.push_back({.destination = address.address, .timeout = Clamp(address.ttl)});
    longest = std::max(longest, elements.back().timeout);
  }
  auto learned = firewall_.Learn(vm, elements);
  if (!learned) {
    Log()->warn("{}: learning the addresses of {}: {}", vm.ToString(), name, learned.error().message);
    return learned;
  }
  Taught& taught = learned_from[name];
  for (const DnsAddress& address : addresses) taught.destinations.insert(address.address);
  taught.until = std::max(taught.until, now + longest);
  return learned;
}

}  // namespace agentvm::net
