// What the firewall is asked to enforce: the network as a whole
// (FirewallConfig) and one VM's place in it (VmNetRules), with the checks
// both pass before anything reaches the kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "netsetup/ipv4.h"

namespace agentvm::net {

struct FirewallConfig {
  std::string bridge;  // the VMs' bridge; only traffic through it is filtered
  Ipv4Subnet subnet;   // the VMs' addresses
  Ipv4Address gateway; // the bridge's address, where the daemon's DNS forwarder listens
  std::vector<std::uint16_t> allowed_tcp_ports{22, 80, 443, 9418};  // every VM may open these
  // What a refused packet from a VM gets besides being counted: true, a TCP
  // reset (TCP) or ICMP admin-prohibited (anything else), so the guest's
  // connect fails at once; false, a silent drop (it times out).
  bool reject_refused = true;
  // Connections one VM may have in the kernel's connection tracking at once
  // (counted by source address); a new one beyond is refused like any other.
  // One guest must not fill the host's conntrack table for everyone.
  std::uint32_t max_connections_per_vm = 1024;
  // When set, refused packets also go to this nfnetlink_log group (the
  // egress log's refused connections, netsetup/nflog_socket.h), at most
  // kRefusedLogPerVmPerSecond of each VM's (burst kRefusedLogPerVmBurst)
  // and kRefusedLogPerSecond (burst kRefusedLogBurst) of all VMs' together:
  // a guest flooding refused connects costs the daemon a bounded trickle of
  // messages, and uses at most a fifth of that trickle, so it cannot crowd
  // the other VMs' refused connections out of their logs. Beyond the limits
  // packets are still refused and counted, only not logged.
  std::optional<std::uint16_t> refused_log_group;
};

inline constexpr std::uint64_t kRefusedLogPerSecond = 50;
inline constexpr std::uint32_t kRefusedLogBurst = 100;
inline constexpr std::uint64_t kRefusedLogPerVmPerSecond = 10;
inline constexpr std::uint32_t kRefusedLogPerVmBurst = 20;
// A VM's bucket goes after this long without a refused packet, so a removed
// VM's does not outlive it (a refused packet refreshes it; one that comes
// back later starts with a full burst).
inline constexpr std::uint64_t kRefusedLogPerVmIdleMs = 60'000;
static_assert(kRefusedLogPerVmIdleMs % 60'000 == 0, "the rule's text says whole minutes");
// What of a refused packet reaches the log: its IPv4 header (at most 60
// bytes) and the 4 bytes of ports after it.
inline constexpr std::uint32_t kRefusedLogSnaplen = 64;
inline constexpr char kRefusedLogPrefix[] = "avm-refused";

struct VmNetRules {
  std::string tap;
  Ipv4Address address;  // the lease; the only source address the VM may use
  std::vector<std::uint16_t> extra_tcp_ports;  // this VM may also open these, to any address outside the subnet
  std::vector<Ipv4Subnet> extra_cidrs;         // this VM may also open TCP to any port but 53 there
  std::optional<std::uint64_t> bytes_per_second;  // each direction; unset: unlimited
  std::string mac;  // the VM NIC's MAC, the only one it may send from; empty: MacForAddress(address)
  // The VM has allow_domains: it reaches only destinations learned from its
  // DNS answers (Firewall::Learn) and extra_cidrs.
  bool by_name = false;
};

inline constexpr std::size_t kMaxExtraTcpPorts = 64;
inline constexpr std::size_t kMaxExtraCidrs = 64;
inline constexpr std::uint64_t kMinBytesPerSecond = 4096;
inline constexpr std::uint32_t kMaxConnectionsPerVmCeiling = 1 << 20;

Result<void> ValidateFirewallConfig(const FirewallConfig& config);

// Checks one VM's rules against the network (address in the subnet, CIDRs
// outside it, ports 1..65535 without duplicates and without 53: DNS goes
// only to the daemon's resolver). kInvalidArgument, with a message a user
// can act on, for the first problem found.
Result<void> ValidateVmNetRules(const FirewallConfig& config, const VmNetRules& rules);

// rules.mac, or the MAC MacForAddress gives when it is empty.
std::string EffectiveMac(const VmNetRules& rules);

}  // namespace agentvm::net
