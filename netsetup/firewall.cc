#include "netsetup/firewall.h"

#include <libnftnl/object.h>
#include <linux/netfilter.h>

#include <algorithm>
#include <vector>

#include "common/logging.h"
#include "netsetup/firewall_ruleset.h"
#include "netsetup/nftnl_objects.h"

namespace agentvm::net {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("net"); }

std::string Describe(const VmNetRules& rules) {
  std::string text = "tap " + rules.tap + " address " + rules.address.ToString();
  if (!rules.extra_tcp_ports.empty()) text += ", " + std::to_string(rules.extra_tcp_ports.size()) + " extra ports";
  if (!rules.extra_cidrs.empty()) text += ", " + std::to_string(rules.extra_cidrs.size()) + " extra CIDRs";
  if (rules.bytes_per_second) text += ", limit " + std::to_string(*rules.bytes_per_second) + " B/s";
  if (rules.by_name) text += ", by name";
  return text;
}

// An element closer than this to its deadline may be gone from the kernel
// by the time a batch deleting it arrives (which would fail the batch).
constexpr auto kExpiryMargin = std::chrono::milliseconds(250);

}  // namespace

Result<std::unique_ptr<Firewall>> Firewall::Create(FirewallConfig config, std::unique_ptr<NftTransport> transport) {
  if (auto valid = ValidateFirewallConfig(config); !valid) return Fail(valid.error());
  if (!transport) {
    auto opened = OpenNftTransport();
    if (!opened) return Fail(opened.error());
    transport = std::move(*opened);
  }
  NftBatch batch;
  ruleset::AddReplaceTables(batch, config);
  if (auto sent = transport->SendBatch(batch); !sent) return Fail(sent.error().Wrap("create the VM firewall"));
  Log()->info("nftables: tables bridge/inet agentvm for bridge {} subnet {} ({} messages)", config.bridge,
              config.subnet.ToString(), batch.size());
  return std::unique_ptr<Firewall>(new Firewall(std::move(config), std::move(transport)));
}

Result<void> Firewall::RemoveTables(NftTransport* transport) {
  std::unique_ptr<NftTransport> owned;
  if (transport == nullptr) {
    auto opened = OpenNftTransport();
    if (!opened) return Fail(opened.error());
    owned = std::move(*opened);
    transport = owned.get();
  }
  NftBatch batch;
  ruleset::AddDeleteTables(batch);
  if (auto sent = transport->SendBatch(batch); !sent) return Fail(sent.error().Wrap("remove the VM firewall"));
  return {};
}

Firewall::~Firewall() {
  if (auto removed = RemoveTables(transport_.get()); !removed) {
    Log()->error("nftables: {}", removed.error().message);
    return;
  }
  Log()->info("nftables: removed tables bridge/inet agentvm");
}

Result<void> Firewall::AddVm(const VmNetRules& rules) {
  if (auto valid = ValidateVmNetRules(config_, rules); !valid) return Fail(valid.error());
  if (vms_.contains(rules.tap)) return Fail(ErrorCode::kConflict, "tap " + rules.tap + " already has firewall rules");
  for (const auto& [tap, other] : vms_) {
    if (other.address == rules.address) {
      return Fail(ErrorCode::kConflict,
                  "address " + rules.address.ToString() + " already has firewall rules (tap " + tap + ")");
    }
  }
  NftBatch batch;
  ruleset::AddVm(batch, rules);
  if (auto sent = transport_->SendBatch(batch); !sent) {
    return Fail(sent.error().Wrap("firewall rules for tap " + rules.tap));
  }
  vms_.emplace(rules.tap, rules);
  Log()->info("nftables: added {}", Describe(rules));
  return {};
}

Result<void> Firewall::RemoveVm(const std::string& tap, Ipv4Address address) {
  auto it = vms_.find(tap);
  if (it == vms_.end()) return Fail(ErrorCode::kNotFound, "tap " + tap + " has no firewall rules");
  if (it->second.address != address) {
    return Fail(ErrorCode::kNotFound, "tap " + tap + " has firewall rules for " + it->second.address.ToString() +
                                          ", not " + address.ToString());
  }
  // Learned elements first: once the address leaves domain_vms nothing it
  // learned may linger for the next VM that leases it.
  ForgetLearned(address);
  NftBatch batch;
  ruleset::RemoveVm(batch, it->second);
  if (auto sent = transport_->SendBatch(batch); !sent) {
    return Fail(sent.error().Wrap("remove firewall rules of tap " + tap));
  }
  Log()->info("nftables: removed tap {} address {}", tap, address.ToString());
  vms_.erase(it);
  return {};
}

Result<void> Firewall::UpdateVm(const VmNetRules& rules) {
  if (auto valid = ValidateVmNetRules(config_, rules); !valid) return Fail(valid.error());
  auto it = vms_.find(rules.tap);
  if (it == vms_.end() || it->second.address != rules.address) {
    return Fail(ErrorCode::kNotFound, "tap " + rules.tap + " has no firewall rules for " + rules.address.ToString());
  }
  VmNetRules updated = rules;
  updated.mac = it->second.mac;  // pinned at AddVm, as QEMU's NIC has it
  // Before the batch: at no moment may the VM reach more than under the old
  // rules or the new ones.
  if (it->second.by_name && !updated.by_name) ForgetLearned(updated.address);
  NftBatch batch;
  ruleset::UpdateVm(batch, it->second, updated);
  if (batch.size() > 0) {
    if (auto sent = transport_->SendBatch(batch); !sent) {
      return Fail(sent.error().Wrap("update firewall rules of tap " + rules.tap));
    }
  }
  it->second = std::move(updated);
  Log()->info("nftables: updated {}", Describe(it->second));
  return {};
}

VmNetRules* Firewall::FindByAddress(Ipv4Address vm) {
  for (auto& [tap, rules] : vms_) {
    if (rules.address == vm) return &rules;
  }
  return nullptr;
}

Result<void> Firewall::Learn(Ipv4Address vm, std::span<const ruleset::LearnedElement> destinations) {
  const VmNetRules* rules = FindByAddress(vm);
  if (rules == nullptr || !rules->by_name) {
    return Fail(ErrorCode::kNotFound, vm.ToString() + " has no rules that learn destinations");
  }
  auto& learned = learned_[vm];
  const auto now = Clock::now();
  std::erase_if(learned, [&](const auto& entry) { return entry.second <= now; });
  std::vector<ruleset::LearnedElement> add;
  std::vector<Ipv4Address> restart;  // alive, but expiring before the new timeout
  for (const ruleset::LearnedElement& element : destinations) {
    const auto deadline = now + element.timeout;
    auto it = learned.find(element.destination);
    if (it != learned.end() && it->second >= deadline) continue;
    if (it != learned.end() && it->second > now + kExpiryMargin) restart.push_back(element.destination);
    add.push_back(element);
  }
  if (add.empty()) return {};
  if (learned.size() + add.size() - restart.size() > kMaxLearnedPerVm) {
    return Fail(ErrorCode::kTooLarge, vm.ToString() + " has " + std::to_string(learned.size()) +
                                                   " learned destinations; at most " +
                                                   std::to_string(kMaxLearnedPerVm) + " may be alive");
  }
  NftBatch batch;
  ruleset::RemoveLearned(batch, vm, restart);
  ruleset::AddLearned(batch, vm, add);
  auto sent = transport_->SendBatch(batch);
  if (!sent && !restart.empty()) {
    // An element we thought alive was gone (the kernel's clock is not ours):
    // add without deleting; a survivor keeps its old timeout.
    NftBatch retry;
    ruleset::AddLearned(retry, vm, add);
    sent = transport_->SendBatch(retry);
  }
  if (!sent) return Fail(sent.error().Wrap("learn destinations of " + vm.ToString()));
  for (const ruleset::LearnedElement& element : add) {
    auto& deadline = learned[element.destination];
    deadline = std::max(deadline, now + element.timeout);
  }
  return {};
}

void Firewall::ForgetLearned(Ipv4Address vm) {
  auto it = learned_.find(vm);
  if (it == learned_.end()) return;
  const auto soon = Clock::now() + kExpiryMargin;
  std::vector<Ipv4Address> alive;
  for (const auto& [destination, deadline] : it->second) {
    if (deadline > soon) alive.push_back(destination);
  }
  learned_.erase(it);
  DeleteLearned(vm, alive);
}

void Firewall::Forget(Ipv4Address vm, std::span<const Ipv4Address> destinations) {
  auto it = learned_.find(vm);
  if (it == learned_.end()) return;
  const auto soon = Clock::now() + kExpiryMargin;
  std::vector<Ipv4Address> alive;
  for (const Ipv4Address& destination : destinations) {
    auto entry = it->second.find(destination);
    if (entry == it->second.end()) continue;
    if (entry->second > soon) alive.push_back(destination);
    it->second.erase(entry);
  }
  DeleteLearned(vm, alive);
}

void Firewall::DeleteLearned(Ipv4Address vm, const std::vector<Ipv4Address>& alive) {
  if (alive.empty()) return;
  NftBatch batch;
  ruleset::RemoveLearned(batch, vm, alive);
  if (transport_->SendBatch(batch)) return;
  for (const Ipv4Address& destination : alive) {
    NftBatch one;
    ruleset::RemoveLearned(one, vm, std::span<const Ipv4Address>(&destination, 1));
    if (auto sent = transport_->SendBatch(one); !sent) {
      Log()->debug("nftables: {} . {} already gone: {}", vm.ToString(), destination.ToString(), sent.error().message);
    }
  }
}

Result<void> Firewall::SetByName(Ipv4Address vm, bool by_name) {
  VmNetRules* rules = FindByAddress(vm);
  if (rules == nullptr) return Fail(ErrorCode::kNotFound, vm.ToString() + " has no firewall rules");
  if (rules->by_name == by_name) return {};
  if (!by_name) ForgetLearned(vm);
  NftBatch batch;
  ruleset::SetByName(batch, vm, by_name);
  if (auto sent = transport_->SendBatch(batch); !sent) return Fail(sent.error().Wrap("by-name filter of " + vm.ToString()));
  rules->by_name = by_name;
  Log()->info("nftables: {} {} by name", vm.ToString(), by_name ? "filters" : "no longer filters");
  return {};
}

std::size_t Firewall::LearnedCount(Ipv4Address vm) const {
  auto it = learned_.find(vm);
  if (it == learned_.end()) return 0;
  const auto now = Clock::now();
  return static_cast<std::size_t>(
      std::count_if(it->second.begin(), it->second.end(), [&](const auto& entry) { return entry.second > now; }));
}

Result<std::uint64_t> Firewall::DroppedPackets(Ipv4Address address) const {
  auto replies = transport_->Query(ruleset::GetDropCounterRequest(address));
  if (!replies) return Fail(replies.error().Wrap("drop counter of " + address.ToString()));
  if (replies->size() != 1) {
    return Fail(ErrorCode::kInternal, "drop counter of " + address.ToString() + ": " +
                                          std::to_string(replies->size()) + " replies, want 1");
  }
  NftnlObj obj(nftnl_obj_alloc());
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(replies->front().data());
  if (nftnl_obj_nlmsg_parse(nlh, obj.get()) < 0 || !nftnl_obj_is_set(obj.get(), NFTNL_OBJ_CTR_PKTS)) {
    return Fail(ErrorCode::kInternal, "drop counter of " + address.ToString() + ": unreadable reply");
  }
  return nftnl_obj_get_u64(obj.get(), NFTNL_OBJ_CTR_PKTS);
}

Result<std::size_t> Firewall::RuleCount() const {
  std::size_t count = 0;
  for (std::uint16_t family : {NFPROTO_BRIDGE, NFPROTO_INET}) {
    auto rules = transport_->Query(ruleset::DumpRulesRequest(family));
    if (!rules) return Fail(rules.error());
    count += rules->size();
  }
  return count;
}

}  // namespace agentvm::net
