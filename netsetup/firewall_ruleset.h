// The nftables ruleset of the VMs' network, as batches of messages. The whole
// ruleset, and what one VM adds to it, is in firewall_ruleset.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "netsetup/firewall_config.h"
#include "netsetup/ipv4.h"
#include "netsetup/nft_batch.h"

namespace agentvm::net::ruleset {

inline constexpr char kTable[] = "agentvm";  // in both families, bridge and inet

// Appends: both tables deleted if there (leftovers of an earlier run), then
// both tables built afresh with every chain, rule and set, sets empty but
// allowed_tcp. Applied as one batch, the kernel never has a moment without
// the filter.
void AddReplaceTables(NftBatch& batch, const FirewallConfig& config);

// Appends the deletion of both tables, whether or not they exist.
void AddDeleteTables(NftBatch& batch);

// Appends one VM's set elements and named objects (a drop counter, and two
// limits when it has a bandwidth limit): never a rule, so the cost of adding a
// VM does not depend on how many there are. Adding elements that exist fails.
void AddVm(NftBatch& batch, const VmNetRules& rules);

// Appends the removal of everything AddVm added for `rules`.
void RemoveVm(NftBatch& batch, const VmNetRules& rules);

// Appends what turns the VM's `old_rules` into `new_rules` (same tap and
// address): its ports and CIDRs added and removed, domain_vms, its bandwidth
// limit objects replaced. Its drop counter stays and keeps counting. Nothing
// when they are the same.
void UpdateVm(NftBatch& batch, const VmNetRules& old_rules, const VmNetRules& new_rules);

// Appends adding (or removing) the VM to domain_vms: while it is there, it
// reaches only learned destinations and its allow_cidrs.
void SetByName(NftBatch& batch, Ipv4Address vm, bool by_name);

struct LearnedElement {
  Ipv4Address destination;
  std::chrono::milliseconds timeout;
};

// Appends `vm . destination` elements of vm_learned, each removed by the
// kernel when its timeout passes. An element that exists is left as it is
// (older kernels keep its old timeout: delete it first to restart it).
void AddLearned(NftBatch& batch, Ipv4Address vm, std::span<const LearnedElement> elements);

// Appends the removal of `vm . destination` elements; each must exist.
void RemoveLearned(NftBatch& batch, Ipv4Address vm, std::span<const Ipv4Address> destinations);

// The name of the VM's drop counter ("drops_10_101_0_2") in table inet agentvm.
std::string DropCounterName(Ipv4Address address);

// GETOBJ for the VM's drop counter; the reply parses with nftnl_obj_nlmsg_parse.
NftMessage GetDropCounterRequest(Ipv4Address address);

// A dump of the rules of our table in `family` (NFPROTO_BRIDGE or NFPROTO_INET).
NftMessage DumpRulesRequest(std::uint16_t family);

}  // namespace agentvm::net::ruleset
