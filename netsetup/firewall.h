// Firewall: owner of agentvmd's two nftables tables (`bridge agentvm`,
// `inet agentvm`) in the calling thread's network namespace. The ruleset is
// in firewall_ruleset.cc; here is its lifecycle. Every change is one atomic
// batch, checked message by message.
//
// The tables outlive a crash of the daemon on purpose: VMs still running keep
// their filter. The next Create replaces them (and until the supervisor
// re-adds its VMs, their traffic is refused by the inet table).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "common/error.h"
#include "netsetup/firewall_config.h"
#include "netsetup/firewall_ruleset.h"
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

  // Changes the rules of a VM that has them (same tap and address; its MAC
  // stays) to `rules`, in one batch: ports, CIDRs, by_name, bandwidth. When
  // by_name goes off, what the VM learned goes first. kInvalidArgument for
  // bad rules (nothing sent), kNotFound for a tap without rules or with
  // another address.
  Result<void> UpdateVm(const VmNetRules& rules);

  // Lets the VM at `vm` (added with by_name) open connections to each
  // destination until its timeout passes, in one batch: acknowledged by the
  // kernel when this returns. A destination learned before gets the longer
  // of its remaining and its new timeout. kNotFound for an unknown VM,
  // kTooLarge beyond kMaxLearnedPerVm live destinations.
  Result<void> Learn(Ipv4Address vm, std::span<const ruleset::LearnedElement> destinations);

  // Turns by_name on or off for a VM that has rules; turning it off forgets
  // what it learned.
  Result<void> SetByName(Ipv4Address vm, bool by_name);

  // Takes back what the VM learned of `destinations` (those still alive).
  void Forget(Ipv4Address vm, std::span<const Ipv4Address> destinations);

  // Destinations the VM may reach now by name (not yet expired).
  std::size_t LearnedCount(Ipv4Address vm) const;

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
  using Clock = std::chrono::steady_clock;
  VmNetRules* FindByAddress(Ipv4Address vm);
  // Deletes all of the VM's learned elements that are still alive.
  void ForgetLearned(Ipv4Address vm);
  // Deletes these elements, one batch, or one by one if that fails (one of
  // them expired meanwhile).
  void DeleteLearned(Ipv4Address vm, const std::vector<Ipv4Address>& alive);

  // What each VM added, by tap: deleting set elements takes their exact keys.
  std::map<std::string, VmNetRules> vms_;
  // Per by-name VM, when each learned element expires (as sent: the kernel's
  // own deadline is a little later).
  std::map<Ipv4Address, std::map<Ipv4Address, Clock::time_point>> learned_;
};

// Live learned destinations one VM may hold: a guest resolving without end
// must not grow the kernel's set without bound.
inline constexpr std::size_t kMaxLearnedPerVm = 4096;

}  // namespace agentvm::net
