// Builds one nftables rule as the expressions `nft` itself would emit for it,
// so `nft list ruleset` prints our rules back in its own syntax. Methods are
// named after the nft phrase they produce; a verdict method ends the rule and
// appends it to the batch.
//
// Registers follow nft's layout: a value (or a concatenation of values) is
// loaded from 4-byte word 0 up; words 0, 4, 8, 12 have the 16-byte names
// NFT_REG_1..4 and the others NFT_REG32_xx.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <optional>
#include <string>

#include "netsetup/ipv4.h"
#include "netsetup/nft_batch.h"
#include "netsetup/nftnl_objects.h"

namespace agentvm::net {

// The register that starts at 4-byte word `word` (0..15).
std::uint32_t RegisterAt(unsigned word);

// Conntrack state bits as `ct state` matches them.
inline constexpr std::uint32_t kCtInvalid = 1;
inline constexpr std::uint32_t kCtEstablished = 2;
inline constexpr std::uint32_t kCtRelated = 4;
inline constexpr std::uint32_t kCtNew = 8;

class RuleBuilder {
 public:
  // `what` is the rule in nft syntax; it names the rule in kernel errors.
  RuleBuilder(NftBatch& batch, std::uint16_t family, const std::string& table, const std::string& chain,
              std::string what);

  // Loads: each puts a value into the register starting at `word`.
  RuleBuilder& LoadMeta(std::uint32_t key, unsigned word = 0);
  RuleBuilder& LoadPayload(std::uint32_t base, std::uint32_t offset, std::uint32_t length, unsigned word = 0);

  // Comparisons against what word 0 holds.
  RuleBuilder& Compare(std::uint32_t op, std::span<const std::uint8_t> data);
  RuleBuilder& Mask(std::span<const std::uint8_t> mask);  // word 0 &= mask
  // `<word 0 .. n> @set` (or `!= @set`): the key is whatever the loads put there.
  RuleBuilder& Lookup(const std::string& set, bool invert = false);

  // Phrases.
  RuleBuilder& IifnameIs(const std::string& name, bool equal = true);   // iifname "x" / != "x"
  RuleBuilder& OifnameIs(const std::string& name, bool equal = true);   // oifname "x" / != "x"
  RuleBuilder& IifnameStartsWith(const std::string& prefix);            // iifname "x*"
  RuleBuilder& NfprotoIs(std::uint8_t nfproto, bool equal = true);      // meta nfproto ipv4
  RuleBuilder& L4protoIs(std::uint8_t proto, bool equal = true);        // meta l4proto tcp
  RuleBuilder& Ipv4AddressIn(bool source, Ipv4Subnet subnet);           // ip saddr/daddr a.b.c.d/n (inet)
  RuleBuilder& Ipv4AddressIs(bool source, Ipv4Address address);        // ip saddr/daddr a.b.c.d (inet)
  RuleBuilder& DportIs(std::uint8_t proto, std::uint16_t port, bool equal = true);  // tcp/udp dport n
  RuleBuilder& CtStateAny(std::uint32_t states);                        // ct state established,related
  RuleBuilder& EtherTypeIs(std::uint16_t ethertype);                    // ether type ip (bridge)
  RuleBuilder& Counter();                                               // counter
  // `counter name <word 0> map @map` / `limit name <word 0> map @map`: the
  // named object the map gives for the key; no element, no effect.
  RuleBuilder& ObjectFromMap(const std::string& map);
  // `add @set { <word 0> ct count over N }`: adds the key to a dynamic set
  // whose element counts the conntrack entries that share it; matches when
  // this packet's connection makes more than `limit` of them.
  RuleBuilder& CtCountOver(const std::string& set, std::uint32_t limit);
  // `limit rate N/second burst B packets`: matches while packets come no
  // faster than that (one token bucket for every packet the rule sees).
  RuleBuilder& LimitRate(std::uint64_t per_second, std::uint32_t burst);
  // `update @set { <word 0> timeout T limit rate N/second burst B packets }`:
  // adds the key to a dynamic set with timeouts whose element keeps its own
  // token bucket and goes `idle_ms` after the key's last packet; matches
  // while packets with that key come no faster than that (a meter).
  RuleBuilder& LimitRatePerKey(const std::string& set, std::uint64_t per_second, std::uint32_t burst,
                               std::uint64_t idle_ms);
  // `log prefix "P" group G snaplen S`: hands the packet's first S bytes to
  // the nfnetlink_log socket bound to group G.
  RuleBuilder& Log(const std::string& prefix, std::uint16_t group, std::uint32_t snaplen);

  // Verdicts: end the rule and append it to the batch.
  void Accept();
  void Drop();
  void Goto(const std::string& chain);
  void Masquerade();
  // `reject with tcp reset` (NFT_REJECT_TCP_RST) or, with `icmpx_code`,
  // `reject with icmpx type <code>` (NFT_REJECT_ICMPX_UNREACH).
  void RejectTcpReset();
  void RejectIcmpx(std::uint8_t icmpx_code);
  // Ends the rule without a verdict: evaluation goes on with the next rule.
  void NoVerdict();

 private:
  void Add(nftnl_expr* expr);
  // `add @set { <word 0> EXPR }` (or `update`, which refreshes the element's
  // timeout when `timeout_ms` is given), the set's element keeping EXPR's
  // state.
  RuleBuilder& AddToSetWith(const std::string& set, nftnl_expr* per_element,
                            std::optional<std::uint64_t> timeout_ms = std::nullopt);
  void Finish();

  NftBatch& batch_;
  NftnlRule rule_;
  std::uint16_t family_;
  std::string what_;
};

// An interface name as nft keys and compares it: 16 bytes, zero padded.
std::array<std::uint8_t, 16> IfnameBytes(const std::string& name);

}  // namespace agentvm::net
