// The VMs' nftables ruleset: every table, set, chain and rule agentvmd puts in
// the kernel, built here and nowhere else.
//
// With bridge agentvm0, subnet 10.101.0.0/16 and two VMs (the second with an
// extra port, an extra CIDR and a bandwidth limit), `nft list ruleset` prints:
//
//   table bridge agentvm {
//     comment "agentvmd: the VMs' network filter; rebuilt on daemon start, do not edit"
//     limit up_avm-500d970fff3 {
//       rate over 1000000 bytes/second burst 128 kbytes
//     }
//
//     limit down_avm-500d970fff3 {
//       rate over 1000000 bytes/second burst 128 kbytes
//     }
//
//     set vm_taps {
//       type ifname
//       elements = { "avm-500d970fff3",
//                    "avm-600d97101a6" }
//     }
//
//     set vm_sources {
//       type ifname . ether_addr . ipv4_addr
//       elements = { "avm-600d97101a6" . 02:00:0a:65:00:02 . 10.101.0.2,
//                    "avm-500d970fff3" . 02:00:0a:65:00:03 . 10.101.0.3 }
//     }
//
//     map vm_limit_up {
//       type ifname : limit
//       elements = { "avm-500d970fff3" : "up_avm-500d970fff3" }
//     }
//
//     map vm_limit_down {
//       type ifname : limit
//       elements = { "avm-500d970fff3" : "down_avm-500d970fff3" }
//     }
//
//     chain prerouting {
//       type filter hook prerouting priority filter; policy accept;
//       iifname != @vm_taps accept
//       limit name iifname map @vm_limit_up drop
//       iifname . ether saddr . ip saddr @vm_sources accept
//       iifname . ether saddr . arp saddr ip @vm_sources iifname . arp saddr ether . arp saddr ip @vm_sources accept
//       counter packets 0 bytes 0 drop
//     }
//
//     chain postrouting {
//       type filter hook postrouting priority filter; policy accept;
//       limit name oifname map @vm_limit_down drop
//     }
//   }
//   table inet agentvm {
//     comment "agentvmd: the VMs' network filter; rebuilt on daemon start, do not edit"
//     counter drops_10_101_0_2 {
//       packets 0 bytes 0
//     }
//
//     counter drops_10_101_0_3 {
//       packets 0 bytes 0
//     }
//
//     set vm_addresses {
//       type ipv4_addr
//       elements = { 10.101.0.2, 10.101.0.3 }
//     }
//
//     set allowed_tcp {
//       type inet_service
//       elements = { 22, 80, 443, 9418 }
//     }
//
//     set vm_ports {
//       type ipv4_addr . inet_service
//       elements = { 10.101.0.3 . 8080 }
//     }
//
//     set vm_cidrs {
//       type ipv4_addr . ipv4_addr
//       flags interval
//       elements = { 10.101.0.3 . 140.82.112.0/20 }
//     }
//
//     map vm_drops {
//       type ipv4_addr : counter
//       elements = { 10.101.0.2 : "drops_10_101_0_2", 10.101.0.3 : "drops_10_101_0_3" }
//     }
//
//     set domain_vms {
//       type ipv4_addr
//       elements = { 10.101.0.4 }
//     }
//
//     set vm_learned {
//       type ipv4_addr . ipv4_addr
//       flags timeout
//       elements = { 10.101.0.4 . 140.82.121.4 timeout 1m expires 52s }
//     }
//
//     set vm_conns {
//       type ipv4_addr
//       size 65536
//       flags dynamic
//     }
//
//     set vm_log_rate {
//       type ipv4_addr
//       size 65536
//       flags dynamic,timeout
//     }
//
//     set private_ranges {
//       type ipv4_addr . ipv4_addr
//       flags interval
//       elements = { 0.0.0.0/0 . 0.0.0.0/8, 0.0.0.0/0 . 10.0.0.0/8,
//                    0.0.0.0/0 . 100.64.0.0/10, ... 0.0.0.0/0 . 224.0.0.0/3 }
//     }
//
//     chain forward {
//       type filter hook forward priority filter; policy accept;
//       iifname "avm-*" drop
//       iifname "agentvm0" ct state established,related accept
//       oifname "agentvm0" ct state established,related accept
//       iifname "agentvm0" goto vm_egress
//       oifname "agentvm0" drop
//     }
//
//     chain vm_egress {
//       meta nfproto != ipv4 drop
//       ip saddr != @vm_addresses drop
//       ip daddr 10.101.0.0/16 goto vm_refuse
//       ip daddr 169.254.0.0/16 goto vm_refuse
//       ip saddr . ip daddr @private_ranges ip saddr . ip daddr != @vm_cidrs goto vm_refuse
//       ip saddr @domain_vms ip saddr . ip daddr != @vm_learned ip saddr . ip daddr != @vm_cidrs goto vm_refuse
//       ct state new add @vm_conns { ip saddr ct count over 1024 } goto vm_refuse
//       tcp dport @allowed_tcp ct state new accept
//       ip saddr . tcp dport @vm_ports ct state new accept
//       tcp dport != 53 ip saddr . ip daddr @vm_cidrs ct state new accept
//       goto vm_refuse
//     }
//
//     chain vm_refuse {
//       counter name ip saddr map @vm_drops
//       update @vm_log_rate { ip saddr timeout 1m limit rate 10/second burst 20 packets } limit rate 50/second burst 100 packets log prefix "avm-refused" group 7100 snaplen 64
//       meta l4proto tcp reject with tcp reset
//       reject with icmpx admin-prohibited
//     }
//
//     chain input {
//       type filter hook input priority filter; policy accept;
//       iifname "avm-*" drop
//       iifname != "agentvm0" iifname != "lo" ip daddr 10.101.0.1 drop
//       iifname != "agentvm0" accept
//       ct state established,related accept
//       ip daddr 10.101.0.1 udp dport 53 accept
//       ip daddr 10.101.0.1 tcp dport 53 accept
//       goto vm_refuse
//     }
//
//     chain postrouting {
//       type nat hook postrouting priority srcnat; policy accept;
//       ip saddr 10.101.0.0/16 oifname != "agentvm0" masquerade
//     }
//   }
//
// Why two tables: frames a VM sends are bridged, and reach the inet family
// with iif = the bridge, not the tap; facts about a bridge port (which tap may
// send from which MAC and address) need the bridge family. The bridge table
// pins each tap to its lease, so in the inet table a source address is a VM.
//
// Why only sets: every per-VM fact is a set element or a named object, so the
// rules are the same for 1 VM and for 500, and adding a VM is a few element
// messages whose cost does not depend on how many VMs there are.
//
// Port isolation (Tap::Create) keeps VMs apart on the bridge itself;
// `ip daddr <subnet> goto vm_refuse` keeps them apart through the host's
// routing. A tap not in vm_taps is not filtered by the bridge table (this
// kernel has no CONFIG_NFT_BRIDGE_META, so `meta ibrname` cannot make it
// "every port of our bridge"), so AddVm comes before the VM starts and
// RemoveVm after it stopped; meanwhile `ip saddr != @vm_addresses drop` keeps
// an unregistered source from getting out at all.
#include "netsetup/firewall_ruleset.h"

#include <netinet/in.h>  // before the linux/ headers, which defer to it
#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <algorithm>

#include "netsetup/net_names.h"
#include "netsetup/nft_builders.h"
#include "netsetup/nft_rule_builder.h"

namespace agentvm::net::ruleset {
namespace {

// Sets and maps.
constexpr char kVmTaps[] = "vm_taps";              // bridge: ifname
constexpr char kVmSources[] = "vm_sources";        // bridge: ifname . ether_addr . ipv4_addr
constexpr char kVmLimitUp[] = "vm_limit_up";       // bridge: ifname : limit (VM -> world)
constexpr char kVmLimitDown[] = "vm_limit_down";   // bridge: ifname : limit (world -> VM)
constexpr char kVmAddresses[] = "vm_addresses";    // inet: ipv4_addr
constexpr char kAllowedTcp[] = "allowed_tcp";      // inet: inet_service
constexpr char kVmPorts[] = "vm_ports";            // inet: ipv4_addr . inet_service
constexpr char kVmCidrs[] = "vm_cidrs";            // inet: ipv4_addr . ipv4_addr, intervals
constexpr Ipv4Subnet kLinkLocal{Ipv4Address{0xa9fe0000}, 16};  // 169.254.0.0/16
constexpr char kVmDrops[] = "vm_drops";            // inet: ipv4_addr : counter
constexpr char kDomainVms[] = "domain_vms";        // inet: ipv4_addr (VMs with allow_domains)
constexpr char kVmLearned[] = "vm_learned";        // inet: ipv4_addr . ipv4_addr, timeouts
constexpr char kVmConns[] = "vm_conns";            // inet: ipv4_addr, filled by the kernel, ct count
constexpr char kVmLogRate[] = "vm_log_rate";       // inet: ipv4_addr, filled by the kernel, a token bucket each
// inet: any source . a private or special destination range, intervals. A
// concatenation only so that the kernel's interval set (pipapo) takes plain
// [first, last] ranges; the source field always spans every address.
constexpr char kPrivateRanges[] = "private_ranges";

// Destinations a VM reaches only when its allow_cidrs open them: the host's
// own networks and the cloud's, not the internet. (169.254/16, with cloud
// metadata, is refused outright; the VMs' subnet too.)
constexpr Ipv4Subnet kPrivateDestinations[] = {
    {Ipv4Address{0x00000000}, 8},   // 0.0.0.0/8 "this network"
    {Ipv4Address{0x0a000000}, 8},   // 10.0.0.0/8 RFC 1918
    {Ipv4Address{0x64400000}, 10},  // 100.64.0.0/10 CGNAT; Alibaba metadata 100.100.100.200
    {Ipv4Address{0x7f000000}, 8},   // 127.0.0.0/8 loopback
    {Ipv4Address{0xa83f8110}, 32},  // 168.63.129.16 Azure's host endpoint (wireserver)
    {Ipv4Address{0xac100000}, 12},  // 172.16.0.0/12 RFC 1918
    {Ipv4Address{0xc0a80000}, 16},  // 192.168.0.0/16 RFC 1918
    {Ipv4Address{0xc6120000}, 15},  // 198.18.0.0/15 benchmarking, used by some VPNs and sandboxes
    {Ipv4Address{0xe0000000}, 3},   // 224.0.0.0/3 multicast, reserved, broadcast
};
// Regular chains.
constexpr char kVmEgress[] = "vm_egress";          // inet: new connections from VMs
constexpr char kVmRefuse[] = "vm_refuse";          // inet: count against the VM, drop

// Bucket on top of one second of the rate: with vnet headers a tap hands the
// bridge GSO frames of up to 64 KiB, which must fit.
constexpr std::uint32_t kLimitBurstBytes = 128 * 1024;

constexpr char kComment[] = "agentvmd: the VMs' network filter; rebuilt on daemon start, do not edit";

std::string LimitName(const std::string& tap, bool up) { return (up ? "up_" : "down_") + tap; }

// ---- the bridge table -------------------------------------------------------

void AddBridgeTable(NftBatch& batch) {
  NftTable table(batch, NFPROTO_BRIDGE, kTable);
  table.Add(kComment);
  table.AddSet({.name = kVmTaps, .key_type = kNftTypeIfname, .key_len = kNftIfnameLen, .string_key = true});
  table.AddSet({.name = kVmSources,
                .key_type = NftConcat(NftConcat(kNftTypeIfname, kNftTypeEther), kNftTypeIpv4),
                .key_len = kNftIfnameLen + kNftEtherLen + kNftIpv4Len});
  for (const char* map : {kVmLimitUp, kVmLimitDown}) {
    table.AddSet({.name = map,
                  .key_type = kNftTypeIfname,
                  .key_len = kNftIfnameLen,
                  .object_type = NFT_OBJECT_LIMIT,
                  .string_key = true});
  }

  // Frames from VMs, before the bridge learns their MAC or forwards them.
  table.AddBaseChain("prerouting", "filter", NF_INET_PRE_ROUTING, -200);
  table.Rule("prerouting", "iifname != @vm_taps accept")
      .LoadMeta(NFT_META_IIFNAME).Lookup(kVmTaps, /*invert=*/true)
      .Accept();
  table.Rule("prerouting", "limit name iifname map @vm_limit_up drop")
      .LoadMeta(NFT_META_IIFNAME).ObjectFromMap(kVmLimitUp)
      .Drop();
  table.Rule("prerouting", "ether type ip iifname . ether saddr . ip saddr @vm_sources accept")
      .EtherTypeIs(ETH_P_IP)
      .LoadMeta(NFT_META_IIFNAME, 0)
      .LoadPayload(NFT_PAYLOAD_LL_HEADER, 6, 6, 4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 6)
      .Lookup(kVmSources)
      .Accept();
  table.Rule("prerouting", "ether type arp iifname . ether saddr . arp saddr ip @vm_sources "
                           "iifname . arp saddr ether . arp saddr ip @vm_sources accept")
      .EtherTypeIs(ETH_P_ARP)
      .LoadMeta(NFT_META_IIFNAME, 0)
      .LoadPayload(NFT_PAYLOAD_LL_HEADER, 6, 6, 4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, 6)
      .Lookup(kVmSources)
      .LoadMeta(NFT_META_IIFNAME, 0)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 8, 6, 4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 14, 4, 6)
      .Lookup(kVmSources)
      .Accept();
  // Anything else from a VM: another source, IPv6, VLAN tags, other ethertypes.
  table.Rule("prerouting", "counter drop").Counter().Drop();

  // Frames to VMs, whether the host routed them or (never, ports being
  // isolated) another port sent them.
  table.AddBaseChain("postrouting", "filter", NF_INET_POST_ROUTING, -200);
  table.Rule("postrouting", "limit name oifname map @vm_limit_down drop")
      .LoadMeta(NFT_META_OIFNAME).ObjectFromMap(kVmLimitDown)
      .Drop();
}

// ---- the inet table ---------------------------------------------------------

void AddInetTable(NftBatch& batch, const FirewallConfig& config) {
  const std::string& bridge = config.bridge;
  const std::string subnet = config.subnet.ToString();
  const std::string gateway = config.gateway.ToString();
  NftTable table(batch, NFPROTO_INET, kTable);
  table.Add(kComment);
  table.AddSet({.name = kVmAddresses, .key_type = kNftTypeIpv4, .key_len = kNftIpv4Len});
  table.AddSet({.name = kAllowedTcp, .key_type = kNftTypeInetService, .key_len = 2});
  table.AddSet({.name = kVmPorts,
                .key_type = NftConcat(kNftTypeIpv4, kNftTypeInetService),
                .key_len = kNftIpv4Len + kNftPortLen});
  table.AddSet({.name = kVmCidrs,
                .key_type = NftConcat(kNftTypeIpv4, kNftTypeIpv4),
                .key_len = 2 * kNftIpv4Len,
                .flags = NFT_SET_INTERVAL,
                .concat_fields = {4, 4}});
  table.AddSet({.name = kVmDrops, .key_type = kNftTypeIpv4, .key_len = kNftIpv4Len, .object_type = NFT_OBJECT_COUNTER});
  table.AddSet({.name = kDomainVms, .key_type = kNftTypeIpv4, .key_len = kNftIpv4Len});
  table.AddSet({.name = kVmLearned,
                .key_type = NftConcat(kNftTypeIpv4, kNftTypeIpv4),
                .key_len = 2 * kNftIpv4Len,
                .flags = NFT_SET_TIMEOUT});
  // One element per VM source address, added by the rule below; the
  // kernel's own connlimit keeps each element's list of live connections.
  table.AddSet({.name = kVmConns,
                .key_type = kNftTypeIpv4,
                .key_len = kNftIpv4Len,
                .flags = NFT_SET_EVAL,
                .size = static_cast<std::uint32_t>(config.subnet.Broadcast().value - config.subnet.network.value + 1)});
  // Likewise, one token bucket per VM source address for the log of its
  // refused packets (only when there is a log).
  if (config.refused_log_group) {
    table.AddSet({.name = kVmLogRate,
                  .key_type = kNftTypeIpv4,
                  .key_len = kNftIpv4Len,
                  .flags = NFT_SET_EVAL | NFT_SET_TIMEOUT,
                  .size = static_cast<std::uint32_t>(config.subnet.Broadcast().value - config.subnet.network.value + 1)});
  }
  table.AddSet({.name = kPrivateRanges,
                .key_type = NftConcat(kNftTypeIpv4, kNftTypeIpv4),
                .key_len = 2 * kNftIpv4Len,
                .flags = NFT_SET_INTERVAL,
                .concat_fields = {4, 4}});
  NftSetElements allowed = table.Elements(kAllowedTcp);
  for (std::uint16_t port : config.allowed_tcp_ports) allowed.Add(NftKey().Port(port, /*padded=*/false));
  allowed.AppendTo(batch, /*add=*/true);
  NftSetElements private_ranges = table.Elements(kPrivateRanges);
  for (const Ipv4Subnet& range : kPrivateDestinations) {
    private_ranges.AddRange(NftKey().Ipv4(Ipv4Address{0}).Ipv4(range.network),
                            NftKey().Ipv4(Ipv4Address{0xffffffff}).Ipv4(range.Broadcast()));
  }
  private_ranges.AppendTo(batch, /*add=*/true);

  // Chains first (in the order `nft list` shows them), so rules can jump.
  table.AddBaseChain("forward", "filter", NF_INET_FORWARD, 0);
  table.AddChain(kVmEgress);
  table.AddChain(kVmRefuse);
  table.AddBaseChain("input", "filter", NF_INET_LOCAL_IN, 0);
  table.AddBaseChain("postrouting", "nat", NF_INET_POST_ROUTING, 100);

  // Routed traffic of our bridge; everything else passes untouched.
  auto forward = [&](const std::string& what) { return table.Rule("forward", what); };
  // A frame a VM sends to a reserved multicast MAC (01:80:c2:00:00:0X) is not
  // bridged but handed to the tap's own stack, bypassing the bridge table:
  // nothing may enter the host or be routed from a tap directly.
  const std::string taps = std::string(kTapPrefix) + "*";
  forward("iifname \"" + taps + "\" drop").IifnameStartsWith(kTapPrefix).Drop();
  forward("iifname \"" + bridge + "\" ct state established,related accept")
      .IifnameIs(bridge).CtStateAny(kCtEstablished | kCtRelated).Accept();
  forward("oifname \"" + bridge + "\" ct state established,related accept")
      .OifnameIs(bridge).CtStateAny(kCtEstablished | kCtRelated).Accept();
  forward("iifname \"" + bridge + "\" goto vm_egress").IifnameIs(bridge).Goto(kVmEgress);
  forward("oifname \"" + bridge + "\" drop").OifnameIs(bridge).Drop();  // nothing unsolicited in

  // New connections from VMs to the world: the whitelist.
  auto egress = [&](const std::string& what) { return table.Rule(kVmEgress, what); };
  egress("meta nfproto != ipv4 drop").NfprotoIs(NFPROTO_IPV4, /*equal=*/false).Drop();
  // Only VMs the supervisor added get out: a tap it has not (yet, or any
  // more) registered is not pinned by the bridge table.
  egress("ip saddr != @vm_addresses drop")
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
      .Lookup(kVmAddresses, /*invert=*/true)
      .Drop();
  egress("ip daddr " + subnet + " goto vm_refuse").Ipv4AddressIn(/*source=*/false, config.subnet).Goto(kVmRefuse);
  // Link-local holds cloud metadata services (169.254.169.254), which hand
  // out the host's credentials over plain HTTP.
  egress("ip daddr 169.254.0.0/16 goto vm_refuse")
      .Ipv4AddressIn(/*source=*/false, kLinkLocal)
      .Goto(kVmRefuse);
  // The host's LAN, CGNAT, container networks and other cloud endpoints:
  // closed unless the VM's own allow_cidrs open them.
  egress("ip saddr . ip daddr @private_ranges ip saddr . ip daddr != @vm_cidrs goto vm_refuse")
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, 1)
      .Lookup(kPrivateRanges)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, 1)
      .Lookup(kVmCidrs, /*invert=*/true)
      .Goto(kVmRefuse);
  // A VM with allow_domains reaches only the addresses its DNS answers
  // taught (DnsForwarder, EgressByName) and its own allow_cidrs; the port
  // rules below then apply as for any VM.
  egress("ip saddr @domain_vms ip saddr . ip daddr != @vm_learned ip saddr . ip daddr != @vm_cidrs goto vm_refuse")
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
      .Lookup(kDomainVms)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, 1)
      .Lookup(kVmLearned, /*invert=*/true)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, 1)
      .Lookup(kVmCidrs, /*invert=*/true)
      .Goto(kVmRefuse);
  // Conntrack table fill: a VM with max_connections_per_vm tracked
  // connections gets no new one until some close. Counted here, after the
  // refusals above, so only connections the port rules may accept count.
  const std::string over = std::to_string(config.max_connections_per_vm);
  egress("ct state new add @vm_conns { ip saddr ct count over " + over + " } goto vm_refuse")
      .CtStateAny(kCtNew)
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
      .CtCountOver(kVmConns, config.max_connections_per_vm)
      .Goto(kVmRefuse);
  egress("tcp dport @allowed_tcp ct state new accept")
      .L4protoIs(IPPROTO_TCP)
      .LoadPayload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)
      .Lookup(kAllowedTcp)
      .CtStateAny(kCtNew)
      .Accept();
  egress("ip saddr . tcp dport @vm_ports ct state new accept")
      .NfprotoIs(NFPROTO_IPV4)
      .L4protoIs(IPPROTO_TCP)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0)
      .LoadPayload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, 1)
      .Lookup(kVmPorts)
      .CtStateAny(kCtNew)
      .Accept();
  egress("tcp dport != 53 ip saddr . ip daddr @vm_cidrs ct state new accept")
      .DportIs(IPPROTO_TCP, 53, /*equal=*/false)
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 0)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4, 1)
      .Lookup(kVmCidrs)
      .CtStateAny(kCtNew)
      .Accept();
  egress("goto vm_refuse").Goto(kVmRefuse);

  // A refused packet from a VM: counted against the VM its source address
  // names (the bridge table made sure it is the VM's own), then dropped.
  table.Rule(kVmRefuse, "counter name ip saddr map @vm_drops")
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
      .ObjectFromMap(kVmDrops)
      .NoVerdict();
  if (config.refused_log_group) {
    // To the egress log, rate-limited here in the kernel, per VM then for
    // all: past either limit a packet skips the log statement, nothing
    // queues up anywhere. Per VM first, so that a flooding VM's packets are
    // stopped by its own bucket before they take the shared one's tokens.
    const std::string group = std::to_string(*config.refused_log_group);
    table
        .Rule(kVmRefuse, "update @vm_log_rate { ip saddr timeout " + std::to_string(kRefusedLogPerVmIdleMs / 60'000) +
                             "m limit rate " + std::to_string(kRefusedLogPerVmPerSecond) +
                             "/second burst " + std::to_string(kRefusedLogPerVmBurst) + " packets } limit rate " +
                             std::to_string(kRefusedLogPerSecond) + "/second burst " +
                             std::to_string(kRefusedLogBurst) + " packets log prefix \"" + kRefusedLogPrefix +
                             "\" group " + group + " snaplen " + std::to_string(kRefusedLogSnaplen))
        .NfprotoIs(NFPROTO_IPV4)
        .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
        .LimitRatePerKey(kVmLogRate, kRefusedLogPerVmPerSecond, kRefusedLogPerVmBurst, kRefusedLogPerVmIdleMs)
        .LimitRate(kRefusedLogPerSecond, kRefusedLogBurst)
        .Log(kRefusedLogPrefix, *config.refused_log_group, kRefusedLogSnaplen)
        .NoVerdict();
  }
  if (config.reject_refused) {
    // Fail fast: the agent's connect gets ECONNREFUSED (or EHOSTUNREACH) in
    // a round trip instead of hanging until its own timeout.
    table.Rule(kVmRefuse, "meta l4proto tcp reject with tcp reset").L4protoIs(IPPROTO_TCP).RejectTcpReset();
    table.Rule(kVmRefuse, "reject with icmpx admin-prohibited").RejectIcmpx(NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
  } else {
    table.Rule(kVmRefuse, "drop").Drop();
  }

  // VMs to the host itself: DNS to the daemon's forwarder, nothing else.
  auto input = [&](const std::string& what) { return table.Rule("input", what); };
  input("iifname \"" + taps + "\" drop").IifnameStartsWith(kTapPrefix).Drop();
  // The gateway address (the DNS forwarder) serves VMs and the host itself,
  // never anyone routing to it from the uplink's side.
  input("iifname != \"" + bridge + "\" iifname != \"lo\" ip daddr " + gateway + " drop")
      .IifnameIs(bridge, /*equal=*/false)
      .IifnameIs("lo", /*equal=*/false)
      .Ipv4AddressIs(/*source=*/false, config.gateway)
      .Drop();
  input("iifname != \"" + bridge + "\" accept").IifnameIs(bridge, /*equal=*/false).Accept();
  input("ct state established,related accept").CtStateAny(kCtEstablished | kCtRelated).Accept();
  input("ip daddr " + gateway + " udp dport 53 accept")
      .Ipv4AddressIs(/*source=*/false, config.gateway).DportIs(IPPROTO_UDP, 53).Accept();
  input("ip daddr " + gateway + " tcp dport 53 accept")
      .Ipv4AddressIs(/*source=*/false, config.gateway).DportIs(IPPROTO_TCP, 53).Accept();
  input("goto vm_refuse").Goto(kVmRefuse);

  // Out to the world under the host's address.
  table.Rule("postrouting", "ip saddr " + subnet + " oifname != \"" + bridge + "\" masquerade")
      .Ipv4AddressIn(/*source=*/true, config.subnet)
      .OifnameIs(bridge, /*equal=*/false)
      .Masquerade();
}

// ---- one VM -----------------------------------------------------------------

// The VM's two bandwidth limit objects (up, down), added or deleted.
void LimitObjects(NftTable& bridge, const VmNetRules& rules, bool add) {
  for (bool up : {true, false}) {
    NftnlObj limit = bridge.NewObject(LimitName(rules.tap, up), NFT_OBJECT_LIMIT);
    nftnl_obj_set_u64(limit.get(), NFTNL_OBJ_LIMIT_RATE, *rules.bytes_per_second);
    nftnl_obj_set_u64(limit.get(), NFTNL_OBJ_LIMIT_UNIT, 1);  // per second
    nftnl_obj_set_u32(limit.get(), NFTNL_OBJ_LIMIT_BURST, kLimitBurstBytes);
    nftnl_obj_set_u32(limit.get(), NFTNL_OBJ_LIMIT_TYPE, NFT_LIMIT_PKT_BYTES);
    nftnl_obj_set_u32(limit.get(), NFTNL_OBJ_LIMIT_FLAGS, NFT_LIMIT_F_INV);  // "rate over": matches the excess
    const std::string what = "limit " + bridge.what() + " " + LimitName(rules.tap, up);
    add ? bridge.AddObject(limit.get(), what) : bridge.DeleteObject(limit.get(), what);
  }
}

// The map elements naming the VM's limit objects.
void LimitMapElements(NftBatch& batch, const NftTable& bridge, const VmNetRules& rules, bool add) {
  bridge.Elements(kVmLimitUp).AddObject(NftKey().Ifname(rules.tap), LimitName(rules.tap, true)).AppendTo(batch, add);
  bridge.Elements(kVmLimitDown).AddObject(NftKey().Ifname(rules.tap), LimitName(rules.tap, false)).AppendTo(batch, add);
}

void PortElements(NftBatch& batch, const NftTable& inet, Ipv4Address vm, const std::vector<std::uint16_t>& ports,
                  bool add) {
  NftSetElements elements = inet.Elements(kVmPorts);
  for (std::uint16_t port : ports) elements.Add(NftKey().Ipv4(vm).Port(port, /*padded=*/true));
  elements.AppendTo(batch, add);
}

void CidrElements(NftBatch& batch, const NftTable& inet, Ipv4Address vm, const std::vector<Ipv4Subnet>& cidrs,
                  bool add) {
  NftSetElements elements = inet.Elements(kVmCidrs);
  for (const Ipv4Subnet& cidr : cidrs) {
    elements.AddRange(NftKey().Ipv4(vm).Ipv4(cidr.network), NftKey().Ipv4(vm).Ipv4(cidr.Broadcast()));
  }
  elements.AppendTo(batch, add);
}

void VmElements(NftBatch& batch, const VmNetRules& rules, bool add) {
  NftTable bridge(batch, NFPROTO_BRIDGE, kTable);
  NftTable inet(batch, NFPROTO_INET, kTable);
  const std::string counter = DropCounterName(rules.address);
  const bool limited = rules.bytes_per_second.has_value();
  // Objects exist before the map elements naming them, and go after them.
  auto objects = [&] {
    NftnlObj drops = inet.NewObject(counter, NFT_OBJECT_COUNTER);
    const std::string what = "counter " + inet.what() + " " + counter;
    add ? inet.AddObject(drops.get(), what) : inet.DeleteObject(drops.get(), what);
    if (limited) LimitObjects(bridge, rules, add);
  };
  if (add) objects();

  bridge.Elements(kVmTaps).Add(NftKey().Ifname(rules.tap)).AppendTo(batch, add);
  bridge.Elements(kVmSources)
      .Add(NftKey().Ifname(rules.tap).Mac(EffectiveMac(rules)).Ipv4(rules.address))
      .AppendTo(batch, add);
  if (limited) LimitMapElements(batch, bridge, rules, add);
  inet.Elements(kVmAddresses).Add(NftKey().Ipv4(rules.address)).AppendTo(batch, add);
  inet.Elements(kVmDrops).AddObject(NftKey().Ipv4(rules.address), counter).AppendTo(batch, add);
  if (rules.by_name) inet.Elements(kDomainVms).Add(NftKey().Ipv4(rules.address)).AppendTo(batch, add);
  PortElements(batch, inet, rules.address, rules.extra_tcp_ports, add);
  CidrElements(batch, inet, rules.address, rules.extra_cidrs, add);

  if (!add) objects();
}

// What `a` has and `b` has not.
template <class T>
std::vector<T> Minus(const std::vector<T>& a, const std::vector<T>& b) {
  std::vector<T> out;
  for (const T& item : a) {
    if (std::find(b.begin(), b.end(), item) == b.end()) out.push_back(item);
  }
  return out;
}

}  // namespace

void AddReplaceTables(NftBatch& batch, const FirewallConfig& config) {
  AddDeleteTables(batch);
  AddBridgeTable(batch);
  AddInetTable(batch, config);
}

void AddDeleteTables(NftBatch& batch) {
  NftTable(batch, NFPROTO_BRIDGE, kTable).DeleteIfPresent();
  NftTable(batch, NFPROTO_INET, kTable).DeleteIfPresent();
}

void AddVm(NftBatch& batch, const VmNetRules& rules) { VmElements(batch, rules, /*add=*/true); }

void RemoveVm(NftBatch& batch, const VmNetRules& rules) { VmElements(batch, rules, /*add=*/false); }

void UpdateVm(NftBatch& batch, const VmNetRules& old_rules, const VmNetRules& new_rules) {
  NftTable bridge(batch, NFPROTO_BRIDGE, kTable);
  NftTable inet(batch, NFPROTO_INET, kTable);
  const Ipv4Address vm = new_rules.address;
  // Deletions first: a CIDR replaced by an overlapping one must be gone
  // before the interval set takes the new one.
  PortElements(batch, inet, vm, Minus(old_rules.extra_tcp_ports, new_rules.extra_tcp_ports), /*add=*/false);
  CidrElements(batch, inet, vm, Minus(old_rules.extra_cidrs, new_rules.extra_cidrs), /*add=*/false);
  PortElements(batch, inet, vm, Minus(new_rules.extra_tcp_ports, old_rules.extra_tcp_ports), /*add=*/true);
  CidrElements(batch, inet, vm, Minus(new_rules.extra_cidrs, old_rules.extra_cidrs), /*add=*/true);
  if (old_rules.by_name != new_rules.by_name) SetByName(batch, vm, new_rules.by_name);
  if (old_rules.bytes_per_second != new_rules.bytes_per_second) {
    // A limit object's rate cannot change in place: the map elements and
    // objects go and come back under the same names, in the same batch.
    if (old_rules.bytes_per_second) {
      LimitMapElements(batch, bridge, old_rules, /*add=*/false);
      LimitObjects(bridge, old_rules, /*add=*/false);
    }
    if (new_rules.bytes_per_second) {
      LimitObjects(bridge, new_rules, /*add=*/true);
      LimitMapElements(batch, bridge, new_rules, /*add=*/true);
    }
  }
}

void SetByName(NftBatch& batch, Ipv4Address vm, bool by_name) {
  NftTable(batch, NFPROTO_INET, kTable).Elements(kDomainVms).Add(NftKey().Ipv4(vm)).AppendTo(batch, by_name);
}

// One message holds at most this many learned elements: libnftnl writes a
// message into 64 KiB without bounds checks, and an element is ~40 bytes.
constexpr std::size_t kLearnedPerMessage = 512;

void AddLearned(NftBatch& batch, Ipv4Address vm, std::span<const LearnedElement> elements) {
  for (std::size_t first = 0; first < elements.size(); first += kLearnedPerMessage) {
    NftSetElements learned = NftTable(batch, NFPROTO_INET, kTable).Elements(kVmLearned);
    for (const LearnedElement& element : elements.subspan(first, std::min(kLearnedPerMessage, elements.size() - first))) {
      learned.AddWithTimeout(NftKey().Ipv4(vm).Ipv4(element.destination),
                             static_cast<std::uint64_t>(element.timeout.count()));
    }
    learned.AppendTo(batch, /*add=*/true, /*exclusive=*/false);
  }
}

void RemoveLearned(NftBatch& batch, Ipv4Address vm, std::span<const Ipv4Address> destinations) {
  for (std::size_t first = 0; first < destinations.size(); first += kLearnedPerMessage) {
    NftSetElements learned = NftTable(batch, NFPROTO_INET, kTable).Elements(kVmLearned);
    for (const Ipv4Address& destination :
         destinations.subspan(first, std::min(kLearnedPerMessage, destinations.size() - first))) {
      learned.Add(NftKey().Ipv4(vm).Ipv4(destination));
    }
    learned.AppendTo(batch, /*add=*/false);
  }
}

std::string DropCounterName(Ipv4Address address) {
  std::string name = "drops_" + address.ToString();
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

NftMessage GetDropCounterRequest(Ipv4Address address) {
  NftnlObj obj = NewNftObject(NFPROTO_INET, kTable, DropCounterName(address), NFT_OBJECT_COUNTER);
  return MakeNftMessage(NFT_MSG_GETOBJ, NFPROTO_INET, 0, "get counter inet agentvm " + DropCounterName(address),
                        [&](nlmsghdr* nlh) { nftnl_obj_nlmsg_build_payload(nlh, obj.get()); });
}

NftMessage DumpRulesRequest(std::uint16_t family) {
  NftnlRule rule(nftnl_rule_alloc());
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, family);
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, kTable);
  return MakeNftMessage(NFT_MSG_GETRULE, family, NLM_F_DUMP, "list rules agentvm",
                        [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rule.get()); });
}

}  // namespace agentvm::net::ruleset
