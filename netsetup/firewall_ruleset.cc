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
//     chain forward {
//       type filter hook forward priority filter; policy accept;
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
//       tcp dport @allowed_tcp ct state new accept
//       ip saddr . tcp dport @vm_ports ct state new accept
//       tcp dport != 53 ip saddr . ip daddr @vm_cidrs ct state new accept
//       goto vm_refuse
//     }
//
//     chain vm_refuse {
//       counter name ip saddr map @vm_drops
//       drop
//     }
//
//     chain input {
//       type filter hook input priority filter; policy accept;
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

#include <arpa/inet.h>
#include <libnftnl/udata.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <vector>

#include "netsetup/net_names.h"
#include "netsetup/nft_rule_builder.h"
#include "netsetup/nftnl_objects.h"

namespace agentvm::net::ruleset {
namespace {

// Set and map names.
constexpr char kVmTaps[] = "vm_taps";              // bridge: ifname
constexpr char kVmSources[] = "vm_sources";        // bridge: ifname . ether_addr . ipv4_addr
constexpr char kVmLimitUp[] = "vm_limit_up";       // bridge: ifname : limit (VM -> world)
constexpr char kVmLimitDown[] = "vm_limit_down";   // bridge: ifname : limit (world -> VM)
constexpr char kVmAddresses[] = "vm_addresses";    // inet: ipv4_addr
constexpr char kAllowedTcp[] = "allowed_tcp";      // inet: inet_service
constexpr char kVmPorts[] = "vm_ports";            // inet: ipv4_addr . inet_service
constexpr char kVmCidrs[] = "vm_cidrs";            // inet: ipv4_addr . ipv4_addr, intervals
constexpr char kVmDrops[] = "vm_drops";            // inet: ipv4_addr : counter
constexpr char kVmEgress[] = "vm_egress";          // inet chain: new connections from VMs
constexpr char kVmRefuse[] = "vm_refuse";          // inet chain: count against the VM, drop

// nft's data type numbers (src/datatype.h), which `nft list` uses to print
// keys; a concatenation's type is its parts' types, 6 bits each.
constexpr std::uint32_t kTypeIpv4 = 7;
constexpr std::uint32_t kTypeEther = 9;
constexpr std::uint32_t kTypeInetService = 13;
constexpr std::uint32_t kTypeIfname = 41;
constexpr std::uint32_t Concat(std::uint32_t a, std::uint32_t b) { return a << 6 | b; }

// Key sizes in the kernel's registers: every part is padded to 4 bytes.
constexpr std::uint32_t kIfnameLen = 16;
constexpr std::uint32_t kEtherLen = 8;  // 6 + 2 padding
constexpr std::uint32_t kIpv4Len = 4;
constexpr std::uint32_t kPortLen = 4;  // 2 + 2 padding when concatenated

// Conservative bucket on top of one second of the rate: with vnet headers a
// tap hands the bridge GSO frames of up to 64 KiB, which must fit.
constexpr std::uint32_t kLimitBurstBytes = 128 * 1024;

constexpr char kComment[] = "agentvmd: the VMs' network filter; rebuilt on daemon start, do not edit";

std::string FamilyName(std::uint16_t family) { return family == NFPROTO_BRIDGE ? "bridge" : "inet"; }

// A key as the kernel compares it: parts appended in order, each padded.
class Key {
 public:
  Key& Ifname(const std::string& name) {
    auto bytes = IfnameBytes(name);
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  Key& Ipv4(Ipv4Address address) {
    const std::uint32_t be = htonl(address.value);
    const auto* p = reinterpret_cast<const std::uint8_t*>(&be);
    bytes_.insert(bytes_.end(), p, p + 4);
    return *this;
  }
  Key& Port(std::uint16_t port, bool padded) {
    bytes_.push_back(static_cast<std::uint8_t>(port >> 8));
    bytes_.push_back(static_cast<std::uint8_t>(port));
    if (padded) bytes_.insert(bytes_.end(), 2, 0);
    return *this;
  }
  Key& Mac(const std::string& text) {
    unsigned char mac[6] = {};
    ParseMac(text, mac);  // validated before it gets here
    bytes_.insert(bytes_.end(), mac, mac + 6);
    bytes_.insert(bytes_.end(), 2, 0);
    return *this;
  }
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

// ---- tables, sets, chains, objects -----------------------------------------

void AddTable(NftBatch& batch, std::uint16_t family) {
  NftnlTable table(nftnl_table_alloc());
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, family);
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, kTable);
  nftnl_udata_buf* udata = nftnl_udata_buf_alloc(256);
  nftnl_udata_put_strz(udata, NFTNL_UDATA_TABLE_COMMENT, kComment);
  nftnl_table_set_data(table.get(), NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(udata), nftnl_udata_buf_len(udata));
  nftnl_udata_buf_free(udata);
  batch.Add(NFT_MSG_NEWTABLE, family, NLM_F_CREATE, "add table " + FamilyName(family) + " agentvm",
            [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
}

// Deleting a table needs it to exist; adding it first (a no-op when it does)
// makes "delete if present" one pair of messages in the same batch.
void AddDeleteTable(NftBatch& batch, std::uint16_t family) {
  NftnlTable table(nftnl_table_alloc());
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, family);
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, kTable);
  const std::string name = FamilyName(family) + " agentvm";
  batch.Add(NFT_MSG_NEWTABLE, family, NLM_F_CREATE, "add table " + name,
            [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
  batch.Add(NFT_MSG_DELTABLE, family, 0, "delete table " + name,
            [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
}

struct SetSpec {
  const char* name;
  std::uint32_t key_type;
  std::uint32_t key_len;
  std::uint32_t flags = 0;
  std::uint32_t object_type = 0;  // NFT_OBJECT_* for `type key : counter` maps
  std::vector<std::uint8_t> concat_fields{};  // field lengths, for interval concatenations
  bool host_order_key = false;  // tells `nft list` the key is a string, not a number to byte-swap
};

void AddSet(NftBatch& batch, std::uint16_t family, const SetSpec& spec) {
  NftnlSet set(nftnl_set_alloc());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, family);
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, kTable);
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, spec.name);
  // The kernel wants an id unique in the transaction (to refer to a set not
  // yet named); the message's position is one.
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, static_cast<std::uint32_t>(batch.size() + 1));
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, spec.key_type);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, spec.key_len);
  std::uint32_t flags = spec.flags;
  if (spec.object_type != 0) {
    flags |= NFT_SET_OBJECT;
    nftnl_set_set_u32(set.get(), NFTNL_SET_OBJ_TYPE, spec.object_type);
  }
  if (!spec.concat_fields.empty()) {
    flags |= NFT_SET_CONCAT;
    nftnl_set_set_data(set.get(), NFTNL_SET_DESC_CONCAT, spec.concat_fields.data(), spec.concat_fields.size());
  }
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, flags);
  if (spec.host_order_key) {
    constexpr std::uint32_t kNftByteorderHost = 1;  // nft's BYTEORDER_HOST_ENDIAN
    nftnl_udata_buf* udata = nftnl_udata_buf_alloc(64);
    nftnl_udata_put_u32(udata, NFTNL_UDATA_SET_KEYBYTEORDER, kNftByteorderHost);
    nftnl_set_set_data(set.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata), nftnl_udata_buf_len(udata));
    nftnl_udata_buf_free(udata);
  }
  batch.Add(NFT_MSG_NEWSET, family, NLM_F_CREATE,
            "add set " + FamilyName(family) + " agentvm " + spec.name,
            [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, set.get()); });
}

void AddBaseChain(NftBatch& batch, std::uint16_t family, const char* name, const char* type, std::uint32_t hook,
                  std::int32_t priority) {
  NftnlChain chain(nftnl_chain_alloc());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, family);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, kTable);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, name);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, type);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, priority);
  // Policy accept: we only ever decide about traffic of our bridge.
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  batch.Add(NFT_MSG_NEWCHAIN, family, NLM_F_CREATE, "add chain " + FamilyName(family) + " agentvm " + name,
            [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, chain.get()); });
}

void AddRegularChain(NftBatch& batch, std::uint16_t family, const char* name) {
  NftnlChain chain(nftnl_chain_alloc());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, family);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, kTable);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, name);
  batch.Add(NFT_MSG_NEWCHAIN, family, NLM_F_CREATE, "add chain " + FamilyName(family) + " agentvm " + name,
            [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, chain.get()); });
}

NftnlObj NewObject(std::uint16_t family, const std::string& name, std::uint32_t type) {
  NftnlObj obj(nftnl_obj_alloc());
  nftnl_obj_set_u32(obj.get(), NFTNL_OBJ_FAMILY, family);
  nftnl_obj_set_str(obj.get(), NFTNL_OBJ_TABLE, kTable);
  nftnl_obj_set_str(obj.get(), NFTNL_OBJ_NAME, name.c_str());
  nftnl_obj_set_u32(obj.get(), NFTNL_OBJ_TYPE, type);
  return obj;
}

void AddObject(NftBatch& batch, std::uint16_t family, const nftnl_obj* obj, const std::string& what, bool add) {
  batch.Add(add ? NFT_MSG_NEWOBJ : NFT_MSG_DELOBJ, family, add ? NLM_F_CREATE | NLM_F_EXCL : 0,
            (add ? "add " : "delete ") + what,
            [&](nlmsghdr* nlh) { nftnl_obj_nlmsg_build_payload(nlh, obj); });
}

std::string LimitName(const std::string& tap, bool up) { return (up ? "up_" : "down_") + tap; }

// Elements of one set, sent as one NEWSETELEM or DELSETELEM message.
class Elements {
 public:
  Elements(std::uint16_t family, const char* set) : family_(family), name_(set), set_(nftnl_set_alloc()) {
    nftnl_set_set_u32(set_.get(), NFTNL_SET_FAMILY, family);
    nftnl_set_set_str(set_.get(), NFTNL_SET_TABLE, kTable);
    nftnl_set_set_str(set_.get(), NFTNL_SET_NAME, set);
  }
  Elements& Add(const Key& key) {
    nftnl_set_elem* elem = NewElem();
    nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY, key.bytes().data(), key.bytes().size());
    return *this;
  }
  Elements& AddRange(const Key& first, const Key& last) {
    nftnl_set_elem* elem = NewElem();
    nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY, first.bytes().data(), first.bytes().size());
    nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY_END, last.bytes().data(), last.bytes().size());
    return *this;
  }
  Elements& AddObject(const Key& key, const std::string& object) {
    nftnl_set_elem* elem = NewElem();
    nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY, key.bytes().data(), key.bytes().size());
    nftnl_set_elem_set_str(elem, NFTNL_SET_ELEM_OBJREF, object.c_str());
    return *this;
  }
  // Appends NEWSETELEM (refusing existing elements) or DELSETELEM.
  void AppendTo(NftBatch& batch, bool add) {
    if (count_ == 0) return;
    nftnl_set* set = set_.get();
    batch.Add(add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, family_, add ? NLM_F_CREATE | NLM_F_EXCL : 0,
              std::string(add ? "add element " : "delete element ") + FamilyName(family_) + " agentvm " + name_,
              [set](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, set); });
  }

 private:
  nftnl_set_elem* NewElem() {
    nftnl_set_elem* elem = nftnl_set_elem_alloc();
    if (elem == nullptr) throw std::bad_alloc();
    nftnl_set_elem_add(set_.get(), elem);  // the set owns it
    ++count_;
    return elem;
  }

  std::uint16_t family_;
  std::string name_;
  NftnlSet set_;
  std::size_t count_ = 0;
};

// ---- the bridge table -------------------------------------------------------

void AddBridgeTable(NftBatch& batch) {
  constexpr std::uint16_t kFamily = NFPROTO_BRIDGE;
  AddTable(batch, kFamily);
  AddSet(batch, kFamily, {.name = kVmTaps, .key_type = kTypeIfname, .key_len = kIfnameLen, .host_order_key = true});
  AddSet(batch, kFamily,
         {.name = kVmSources,
          .key_type = Concat(Concat(kTypeIfname, kTypeEther), kTypeIpv4),
          .key_len = kIfnameLen + kEtherLen + kIpv4Len});
  AddSet(batch, kFamily,
         {.name = kVmLimitUp,
          .key_type = kTypeIfname,
          .key_len = kIfnameLen,
          .object_type = NFT_OBJECT_LIMIT,
          .host_order_key = true});
  AddSet(batch, kFamily,
         {.name = kVmLimitDown,
          .key_type = kTypeIfname,
          .key_len = kIfnameLen,
          .object_type = NFT_OBJECT_LIMIT,
          .host_order_key = true});

  // Frames from VMs, before the bridge learns their MAC or forwards them.
  AddBaseChain(batch, kFamily, "prerouting", "filter", NF_INET_PRE_ROUTING, -200);
  auto rule = [&](const char* what) { return RuleBuilder(batch, kFamily, kTable, "prerouting", what); };
  rule("iifname != @vm_taps accept")
      .LoadMeta(NFT_META_IIFNAME).Lookup(kVmTaps, /*invert=*/true)
      .Accept();
  rule("limit name iifname map @vm_limit_up drop")
      .LoadMeta(NFT_META_IIFNAME).ObjectFromMap(kVmLimitUp)
      .Drop();
  rule("ether type ip iifname . ether saddr . ip saddr @vm_sources accept")
      .EtherTypeIs(ETH_P_IP)
      .LoadMeta(NFT_META_IIFNAME, 0)
      .LoadPayload(NFT_PAYLOAD_LL_HEADER, 6, 6, 4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4, 6)
      .Lookup(kVmSources)
      .Accept();
  rule("ether type arp iifname . ether saddr . arp saddr ip @vm_sources "
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
  rule("counter drop").Counter().Drop();

  // Frames to VMs, whether the host routed them or (never, ports being
  // isolated) another port sent them.
  AddBaseChain(batch, kFamily, "postrouting", "filter", NF_INET_POST_ROUTING, -200);
  RuleBuilder(batch, kFamily, kTable, "postrouting", "limit name oifname map @vm_limit_down drop")
      .LoadMeta(NFT_META_OIFNAME).ObjectFromMap(kVmLimitDown)
      .Drop();
}

// ---- the inet table ---------------------------------------------------------

void AddInetTable(NftBatch& batch, const FirewallConfig& config) {
  constexpr std::uint16_t kFamily = NFPROTO_INET;
  const std::string& bridge = config.bridge;
  const std::string subnet = config.subnet.ToString();
  const std::string gateway = config.gateway.ToString();
  AddTable(batch, kFamily);
  AddSet(batch, kFamily, {.name = kVmAddresses, .key_type = kTypeIpv4, .key_len = kIpv4Len});
  AddSet(batch, kFamily, {.name = kAllowedTcp, .key_type = kTypeInetService, .key_len = 2});
  AddSet(batch, kFamily,
         {.name = kVmPorts, .key_type = Concat(kTypeIpv4, kTypeInetService), .key_len = kIpv4Len + kPortLen});
  AddSet(batch, kFamily,
         {.name = kVmCidrs,
          .key_type = Concat(kTypeIpv4, kTypeIpv4),
          .key_len = 2 * kIpv4Len,
          .flags = NFT_SET_INTERVAL,
          .concat_fields = {4, 4}});
  AddSet(batch, kFamily,
         {.name = kVmDrops, .key_type = kTypeIpv4, .key_len = kIpv4Len, .object_type = NFT_OBJECT_COUNTER});
  Elements allowed(kFamily, kAllowedTcp);
  for (std::uint16_t port : config.allowed_tcp_ports) allowed.Add(Key().Port(port, /*padded=*/false));
  allowed.AppendTo(batch, /*add=*/true);

  // Chains first (in the order `nft list` shows them), so rules can jump.
  AddBaseChain(batch, kFamily, "forward", "filter", NF_INET_FORWARD, 0);
  AddRegularChain(batch, kFamily, kVmEgress);
  AddRegularChain(batch, kFamily, kVmRefuse);
  AddBaseChain(batch, kFamily, "input", "filter", NF_INET_LOCAL_IN, 0);
  AddBaseChain(batch, kFamily, "postrouting", "nat", NF_INET_POST_ROUTING, 100);

  // Routed traffic of our bridge; everything else passes untouched.
  auto forward = [&](const std::string& what) { return RuleBuilder(batch, kFamily, kTable, "forward", what); };
  forward("iifname \"" + bridge + "\" ct state established,related accept")
      .IifnameIs(bridge).CtStateAny(kCtEstablished | kCtRelated).Accept();
  forward("oifname \"" + bridge + "\" ct state established,related accept")
      .OifnameIs(bridge).CtStateAny(kCtEstablished | kCtRelated).Accept();
  forward("iifname \"" + bridge + "\" goto vm_egress").IifnameIs(bridge).Goto(kVmEgress);
  forward("oifname \"" + bridge + "\" drop").OifnameIs(bridge).Drop();  // nothing unsolicited in

  // New connections from VMs to the world: the whitelist.
  auto egress = [&](const std::string& what) { return RuleBuilder(batch, kFamily, kTable, kVmEgress, what); };
  egress("meta nfproto != ipv4 drop").NfprotoIs(NFPROTO_IPV4, /*equal=*/false).Drop();
  // Only VMs the supervisor added get out: a tap it has not (yet, or any
  // more) registered is not pinned by the bridge table.
  egress("ip saddr != @vm_addresses drop")
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
      .Lookup(kVmAddresses, /*invert=*/true)
      .Drop();
  egress("ip daddr " + subnet + " goto vm_refuse").Ipv4AddressIn(/*source=*/false, config.subnet).Goto(kVmRefuse);
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
  RuleBuilder(batch, kFamily, kTable, kVmRefuse, "counter name ip saddr map @vm_drops")
      .NfprotoIs(NFPROTO_IPV4)
      .LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4)
      .ObjectFromMap(kVmDrops)
      .NoVerdict();
  RuleBuilder(batch, kFamily, kTable, kVmRefuse, "drop").Drop();

  // VMs to the host itself: DNS to the daemon's forwarder, nothing else.
  auto input = [&](const std::string& what) { return RuleBuilder(batch, kFamily, kTable, "input", what); };
  input("iifname != \"" + bridge + "\" accept").IifnameIs(bridge, /*equal=*/false).Accept();
  input("ct state established,related accept").CtStateAny(kCtEstablished | kCtRelated).Accept();
  input("ip daddr " + gateway + " udp dport 53 accept")
      .Ipv4AddressIs(/*source=*/false, config.gateway).DportIs(IPPROTO_UDP, 53).Accept();
  input("ip daddr " + gateway + " tcp dport 53 accept")
      .Ipv4AddressIs(/*source=*/false, config.gateway).DportIs(IPPROTO_TCP, 53).Accept();
  input("goto vm_refuse").Goto(kVmRefuse);

  // Out to the world under the host's address.
  RuleBuilder(batch, kFamily, kTable, "postrouting",
              "ip saddr " + subnet + " oifname != \"" + bridge + "\" masquerade")
      .Ipv4AddressIn(/*source=*/true, config.subnet)
      .OifnameIs(bridge, /*equal=*/false)
      .Masquerade();
}

// ---- one VM -----------------------------------------------------------------

void VmElements(NftBatch& batch, const VmNetRules& rules, bool add) {
  const std::string counter = DropCounterName(rules.address);
  const bool limited = rules.bytes_per_second.has_value();
  auto object_message = [&](std::uint16_t family, const NftnlObj& obj, const std::string& what) {
    AddObject(batch, family, obj.get(), what, add);
  };
  auto objects_first = [&] {
    object_message(NFPROTO_INET, NewObject(NFPROTO_INET, counter, NFT_OBJECT_COUNTER),
                   "counter inet agentvm " + counter);
    if (!limited) return;
    for (bool up : {true, false}) {
      NftnlObj limit = NewObject(NFPROTO_BRIDGE, LimitName(rules.tap, up), NFT_OBJECT_LIMIT);
      nftnl_obj_set_u64(limit.get(), NFTNL_OBJ_LIMIT_RATE, *rules.bytes_per_second);
      nftnl_obj_set_u64(limit.get(), NFTNL_OBJ_LIMIT_UNIT, 1);  // per second
      nftnl_obj_set_u32(limit.get(), NFTNL_OBJ_LIMIT_BURST, kLimitBurstBytes);
      nftnl_obj_set_u32(limit.get(), NFTNL_OBJ_LIMIT_TYPE, NFT_LIMIT_PKT_BYTES);
      nftnl_obj_set_u32(limit.get(), NFTNL_OBJ_LIMIT_FLAGS, NFT_LIMIT_F_INV);  // "rate over": matches the excess
      object_message(NFPROTO_BRIDGE, limit, "limit bridge agentvm " + LimitName(rules.tap, up));
    }
  };
  // Objects exist before the map elements naming them, and go after them.
  if (add) objects_first();

  Elements(NFPROTO_BRIDGE, kVmTaps).Add(Key().Ifname(rules.tap)).AppendTo(batch, add);
  Elements(NFPROTO_BRIDGE, kVmSources)
      .Add(Key().Ifname(rules.tap).Mac(EffectiveMac(rules)).Ipv4(rules.address))
      .AppendTo(batch, add);
  if (limited) {
    Elements(NFPROTO_BRIDGE, kVmLimitUp).AddObject(Key().Ifname(rules.tap), LimitName(rules.tap, true))
        .AppendTo(batch, add);
    Elements(NFPROTO_BRIDGE, kVmLimitDown).AddObject(Key().Ifname(rules.tap), LimitName(rules.tap, false))
        .AppendTo(batch, add);
  }
  Elements(NFPROTO_INET, kVmAddresses).Add(Key().Ipv4(rules.address)).AppendTo(batch, add);
  Elements(NFPROTO_INET, kVmDrops).AddObject(Key().Ipv4(rules.address), counter).AppendTo(batch, add);
  Elements ports(NFPROTO_INET, kVmPorts);
  for (std::uint16_t port : rules.extra_tcp_ports) ports.Add(Key().Ipv4(rules.address).Port(port, /*padded=*/true));
  ports.AppendTo(batch, add);
  Elements cidrs(NFPROTO_INET, kVmCidrs);
  for (const Ipv4Subnet& cidr : rules.extra_cidrs) {
    cidrs.AddRange(Key().Ipv4(rules.address).Ipv4(cidr.network), Key().Ipv4(rules.address).Ipv4(cidr.Broadcast()));
  }
  cidrs.AppendTo(batch, add);

  if (!add) objects_first();
}

}  // namespace

void AddReplaceTables(NftBatch& batch, const FirewallConfig& config) {
  AddDeleteTables(batch);
  AddBridgeTable(batch);
  AddInetTable(batch, config);
}

void AddDeleteTables(NftBatch& batch) {
  AddDeleteTable(batch, NFPROTO_BRIDGE);
  AddDeleteTable(batch, NFPROTO_INET);
}

void AddVm(NftBatch& batch, const VmNetRules& rules) { VmElements(batch, rules, /*add=*/true); }

void RemoveVm(NftBatch& batch, const VmNetRules& rules) { VmElements(batch, rules, /*add=*/false); }

std::string DropCounterName(Ipv4Address address) {
  std::string name = "drops_" + address.ToString();
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

NftMessage GetDropCounterRequest(Ipv4Address address) {
  NftnlObj obj = NewObject(NFPROTO_INET, DropCounterName(address), NFT_OBJECT_COUNTER);
  return MakeNftMessage(NFT_MSG_GETOBJ, NFPROTO_INET, 0, "get counter inet agentvm " + DropCounterName(address),
                        [&](nlmsghdr* nlh) { nftnl_obj_nlmsg_build_payload(nlh, obj.get()); });
}

NftMessage DumpRulesRequest(std::uint16_t family) {
  NftnlRule rule(nftnl_rule_alloc());
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, family);
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, kTable);
  return MakeNftMessage(NFT_MSG_GETRULE, family, NLM_F_DUMP, "list rules " + FamilyName(family) + " agentvm",
                        [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rule.get()); });
}

}  // namespace agentvm::net::ruleset
