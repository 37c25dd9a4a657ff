// Firewall: owner of agentvmd's two nftables tables (`bridge agentvm`,
// `inet agentvm`) in the calling thread's network namespace. The ruleset is
// in firewall_ruleset.cc; here is its lifecycle. Every change is one atomic
// batch, checked message by message.
//
// The tables outlive a crash of the daemon on purpose: VMs still running keep
// their filter. The next Create replaces them (and until the supervisor
// re-adds its VMs, their traffic is refused by the inet table).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/error.h"
#include "netsetup/firewall_config.h"
#include "netsetup/ipv4.h"
#include "netsetup/nft_transport.h"

namespace agentvm::net {

class Firewall {
 public:
  // Validates `config`, then in one batch removes our tables if an earlier
  // run left them and builds them afresh. `transport` nullptr: a real
  // netlink socket in the calling thread's namespace.
  static Result<std::unique_ptr<Firewall>> Create(FirewallConfig config,
                                                  std::unique_ptr<NftTransport> transport = nullptr);

  // Removes both tables if they exist (leftovers, without a Firewall object).
  static Result<void> RemoveTables(NftTransport* transport = nullptr);

  // Deletes both tables; logs a failure.
  ~Firewall();
  Firewall(const Firewall&) = delete;
  Firewall& operator=(const Firewall&) = delete;

  // Adds one VM's set elements and objects in one batch: never a rule. Call
  // before the VM can send (its tap is unfiltered by the bridge table until
  // then). kInvalidArgument for bad rules (nothing sent), kConflict when the
  // tap or address already has rules.
  Result<void> AddVm(const VmNetRules& rules);

  // Takes out everything AddVm added for this tap, in one batch. Call after
  // the VM stopped. kNotFound when the tap has no rules or another address.
  Result<void> RemoveVm(const std::string& tap, Ipv4Address address);

  // Packets the VM sent that the filter refused (new connections outside the
  // whitelist, to other VMs, to the host besides DNS), read from its counter.
  Result<std::uint64_t> DroppedPackets(Ipv4Address address) const;

  // Rules in both tables; the same for any number of VMs.
  Result<std::size_t> RuleCount() const;

  const FirewallConfig& config() const { return config_; }
  std::size_t vm_count() const { return vms_.size(); }

 private:
  Firewall(FirewallConfig config, std::unique_ptr<NftTransport> transport)
      : config_(std::move(config)), transport_(std::move(transport)) {}

  FirewallConfig config_;
  std::unique_ptr<NftTransport> transport_;
  // What each VM added, by tap: deleting set elements takes their exact keys.
  std::map<std::string, VmNetRules> vms_;
};

}  // namespace agentvm::net
