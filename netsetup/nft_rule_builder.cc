#include "netsetup/nft_rule_builder.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <cstring>

namespace agentvm::net {
namespace {

nftnl_expr* NewExpr(const char* name) {
  nftnl_expr* expr = nftnl_expr_alloc(name);
  if (expr == nullptr) throw std::bad_alloc();
  return expr;
}

std::array<std::uint8_t, 4> BigEndian32(std::uint32_t value) {
  return {static_cast<std::uint8_t>(value >> 24), static_cast<std::uint8_t>(value >> 16),
          static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)};
}

}  // namespace

std::uint32_t RegisterAt(unsigned word) {
  return word % 4 == 0 ? NFT_REG_1 + word / 4 : NFT_REG32_00 + word;
}

std::array<std::uint8_t, 16> IfnameBytes(const std::string& name) {
  std::array<std::uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), name.data(), std::min<std::size_t>(name.size(), 15));
  return bytes;
}

RuleBuilder::RuleBuilder(NftBatch& batch, std::uint16_t family, const std::string& table, const std::string& chain,
                         std::string what)
    : batch_(batch), rule_(nftnl_rule_alloc()), family_(family), what_(std::move(what)) {
  if (!rule_) throw std::bad_alloc();
  nftnl_rule_set_u32(rule_.get(), NFTNL_RULE_FAMILY, family);
  nftnl_rule_set_str(rule_.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(rule_.get(), NFTNL_RULE_CHAIN, chain.c_str());
  const char* family_name = family == NFPROTO_BRIDGE ? "bridge " : family == NFPROTO_INET ? "inet " : "";
  what_ = "add rule " + std::string(family_name) + table + " " + chain + ": " + what_;
}

void RuleBuilder::Add(nftnl_expr* expr) { nftnl_rule_add_expr(rule_.get(), expr); }

RuleBuilder& RuleBuilder::LoadMeta(std::uint32_t key, unsigned word) {
  nftnl_expr* expr = NewExpr("meta");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_META_DREG, RegisterAt(word));
  Add(expr);
  return *this;
}

RuleBuilder& RuleBuilder::LoadPayload(std::uint32_t base, std::uint32_t offset, std::uint32_t length,
                                      unsigned word) {
  nftnl_expr* expr = NewExpr("payload");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_PAYLOAD_LEN, length);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_PAYLOAD_DREG, RegisterAt(word));
  Add(expr);
  return *this;
}

RuleBuilder& RuleBuilder::Compare(std::uint32_t op, std::span<const std::uint8_t> data) {
  nftnl_expr* expr = NewExpr("cmp");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(expr, NFTNL_EXPR_CMP_DATA, data.data(), data.size());
  Add(expr);
  return *this;
}

RuleBuilder& RuleBuilder::Mask(std::span<const std::uint8_t> mask) {
  std::array<std::uint8_t, 16> zero{};
  nftnl_expr* expr = NewExpr("bitwise");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_BITWISE_LEN, mask.size());
  nftnl_expr_set(expr, NFTNL_EXPR_BITWISE_MASK, mask.data(), mask.size());
  nftnl_expr_set(expr, NFTNL_EXPR_BITWISE_XOR, zero.data(), mask.size());
  Add(expr);
  return *this;
}

RuleBuilder& RuleBuilder::Lookup(const std::string& set, bool invert) {
  nftnl_expr* expr = NewExpr("lookup");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(expr, NFTNL_EXPR_LOOKUP_SET, set.c_str());
  if (invert) nftnl_expr_set_u32(expr, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  Add(expr);
  return *this;
}

RuleBuilder& RuleBuilder::IifnameIs(const std::string& name, bool equal) {
  auto bytes = IfnameBytes(name);
  return LoadMeta(NFT_META_IIFNAME).Compare(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, bytes);
}

RuleBuilder& RuleBuilder::IifnameStartsWith(const std::string& prefix) {
  // nft's wildcard: compare only the prefix's bytes of the name register.
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(prefix.data()), prefix.size());
  return LoadMeta(NFT_META_IIFNAME).Compare(NFT_CMP_EQ, bytes);
}

RuleBuilder& RuleBuilder::OifnameIs(const std::string& name, bool equal) {
  auto bytes = IfnameBytes(name);
  return LoadMeta(NFT_META_OIFNAME).Compare(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, bytes);
}

RuleBuilder& RuleBuilder::NfprotoIs(std::uint8_t nfproto, bool equal) {
  const std::uint8_t data[1] = {nfproto};
  return LoadMeta(NFT_META_NFPROTO).Compare(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, data);
}

RuleBuilder& RuleBuilder::L4protoIs(std::uint8_t proto, bool equal) {
  const std::uint8_t data[1] = {proto};
  return LoadMeta(NFT_META_L4PROTO).Compare(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, data);
}

RuleBuilder& RuleBuilder::Ipv4AddressIn(bool source, Ipv4Subnet subnet) {
  NfprotoIs(NFPROTO_IPV4);
  LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, source ? 12 : 16, 4);
  if (subnet.prefix_length < 32) Mask(BigEndian32(subnet.Mask()));
  return Compare(NFT_CMP_EQ, BigEndian32(subnet.network.value));
}

RuleBuilder& RuleBuilder::Ipv4AddressIs(bool source, Ipv4Address address) {
  return Ipv4AddressIn(source, Ipv4Subnet{address, 32});
}

RuleBuilder& RuleBuilder::DportIs(std::uint8_t proto, std::uint16_t port, bool equal) {
  const std::uint8_t data[2] = {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port)};
  L4protoIs(proto);
  LoadPayload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
  return Compare(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, data);
}

RuleBuilder& RuleBuilder::CtStateAny(std::uint32_t states) {
  nftnl_expr* expr = NewExpr("ct");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_CT_DREG, NFT_REG_1);
  Add(expr);
  std::uint8_t mask[4];
  std::memcpy(mask, &states, 4);  // ct state is a host-order u32
  const std::uint8_t zero[4] = {0, 0, 0, 0};
  return Mask(mask).Compare(NFT_CMP_NEQ, zero);
}

RuleBuilder& RuleBuilder::EtherTypeIs(std::uint16_t ethertype) {
  const std::uint8_t data[2] = {static_cast<std::uint8_t>(ethertype >> 8), static_cast<std::uint8_t>(ethertype)};
  return LoadPayload(NFT_PAYLOAD_LL_HEADER, 12, 2).Compare(NFT_CMP_EQ, data);
}

RuleBuilder& RuleBuilder::Counter() {
  Add(NewExpr("counter"));
  return *this;
}

RuleBuilder& RuleBuilder::ObjectFromMap(const std::string& map) {
  nftnl_expr* expr = NewExpr("objref");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_OBJREF_SET_SREG, NFT_REG_1);
  nftnl_expr_set_str(expr, NFTNL_EXPR_OBJREF_SET_NAME, map.c_str());
  Add(expr);
  return *this;
}

namespace {

// A packet-rate token bucket, for a rule or for each element of a set.
nftnl_expr* PacketLimit(nftnl_expr* expr, std::uint64_t per_second, std::uint32_t burst) {
  nftnl_expr_set_u64(expr, NFTNL_EXPR_LIMIT_RATE, per_second);
  nftnl_expr_set_u64(expr, NFTNL_EXPR_LIMIT_UNIT, 1);  // seconds
  nftnl_expr_set_u32(expr, NFTNL_EXPR_LIMIT_BURST, burst);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
  return expr;
}

}  // namespace

RuleBuilder& RuleBuilder::AddToSetWith(const std::string& set, nftnl_expr* per_element,
                                       std::optional<std::uint64_t> timeout_ms) {
  nftnl_expr* expr = NewExpr("dynset");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_DYNSET_OP, timeout_ms ? NFT_DYNSET_OP_UPDATE : NFT_DYNSET_OP_ADD);
  if (timeout_ms) nftnl_expr_set_u64(expr, NFTNL_EXPR_DYNSET_TIMEOUT, *timeout_ms);
  nftnl_expr_set_str(expr, NFTNL_EXPR_DYNSET_SET_NAME, set.c_str());
  nftnl_expr_set(expr, NFTNL_EXPR_DYNSET_EXPR, per_element, 0);  // the dynset owns it now
  Add(expr);
  return *this;
}

RuleBuilder& RuleBuilder::CtCountOver(const std::string& set, std::uint32_t limit) {
  nftnl_expr* count = NewExpr("connlimit");
  nftnl_expr_set_u32(count, NFTNL_EXPR_CONNLIMIT_COUNT, limit);
  nftnl_expr_set_u32(count, NFTNL_EXPR_CONNLIMIT_FLAGS, NFT_CONNLIMIT_F_INV);  // "over"
  return AddToSetWith(set, count);
}

RuleBuilder& RuleBuilder::LimitRate(std::uint64_t per_second, std::uint32_t burst) {
  Add(PacketLimit(NewExpr("limit"), per_second, burst));
  return *this;
}

RuleBuilder& RuleBuilder::LimitRatePerKey(const std::string& set, std::uint64_t per_second, std::uint32_t burst,
                                          std::uint64_t idle_ms) {
  return AddToSetWith(set, PacketLimit(NewExpr("limit"), per_second, burst), idle_ms);
}

RuleBuilder& RuleBuilder::Log(const std::string& prefix, std::uint16_t group, std::uint32_t snaplen) {
  nftnl_expr* expr = NewExpr("log");
  nftnl_expr_set_str(expr, NFTNL_EXPR_LOG_PREFIX, prefix.c_str());
  nftnl_expr_set_u16(expr, NFTNL_EXPR_LOG_GROUP, group);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_LOG_SNAPLEN, snaplen);
  Add(expr);
  return *this;
}

void RuleBuilder::Accept() {
  nftnl_expr* expr = NewExpr("immediate");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
  Add(expr);
  Finish();
}

void RuleBuilder::Drop() {
  nftnl_expr* expr = NewExpr("immediate");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
  Add(expr);
  Finish();
}

void RuleBuilder::Goto(const std::string& chain) {
  nftnl_expr* expr = NewExpr("immediate");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(expr, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(NFT_GOTO));
  nftnl_expr_set_str(expr, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  Add(expr);
  Finish();
}

void RuleBuilder::Masquerade() {
  Add(NewExpr("masq"));
  Finish();
}

void RuleBuilder::RejectTcpReset() {
  nftnl_expr* expr = NewExpr("reject");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
  nftnl_expr_set_u8(expr, NFTNL_EXPR_REJECT_CODE, 0);
  Add(expr);
  Finish();
}

void RuleBuilder::RejectIcmpx(std::uint8_t icmpx_code) {
  nftnl_expr* expr = NewExpr("reject");
  nftnl_expr_set_u32(expr, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
  nftnl_expr_set_u8(expr, NFTNL_EXPR_REJECT_CODE, icmpx_code);
  Add(expr);
  Finish();
}

void RuleBuilder::NoVerdict() { Finish(); }

void RuleBuilder::Finish() {
  nftnl_rule* rule = rule_.get();
  batch_.Add(NFT_MSG_NEWRULE, family_, NLM_F_APPEND | NLM_F_CREATE, std::move(what_),
             [rule](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rule); });
  rule_.reset();
}

}  // namespace agentvm::net
