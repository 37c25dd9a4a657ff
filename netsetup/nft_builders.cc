#include "netsetup/nft_builders.h"

#include <arpa/inet.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <new>

#include "netsetup/net_names.h"

namespace agentvm::net {
namespace {

std::string FamilyName(std::uint16_t family) {
  switch (family) {
    case NFPROTO_BRIDGE: return "bridge";
    case NFPROTO_INET: return "inet";
    case NFPROTO_IPV4: return "ip";
    default: return "family" + std::to_string(family);
  }
}

}  // namespace

NftKey& NftKey::Ifname(const std::string& name) {
  auto bytes = IfnameBytes(name);
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  return *this;
}

NftKey& NftKey::Ipv4(Ipv4Address address) {
  const std::uint32_t be = htonl(address.value);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&be);
  bytes_.insert(bytes_.end(), p, p + 4);
  return *this;
}

NftKey& NftKey::Port(std::uint16_t port, bool padded) {
  bytes_.push_back(static_cast<std::uint8_t>(port >> 8));
  bytes_.push_back(static_cast<std::uint8_t>(port));
  if (padded) bytes_.insert(bytes_.end(), 2, 0);
  return *this;
}

NftKey& NftKey::Mac(const std::string& text) {
  unsigned char mac[6] = {};
  ParseMac(text, mac);
  bytes_.insert(bytes_.end(), mac, mac + 6);
  bytes_.insert(bytes_.end(), 2, 0);
  return *this;
}

NftSetElements::NftSetElements(std::uint16_t family, const std::string& table, const std::string& set)
    : family_(family), what_(FamilyName(family) + " " + table + " " + set), set_(nftnl_set_alloc()) {
  if (!set_) throw std::bad_alloc();
  nftnl_set_set_u32(set_.get(), NFTNL_SET_FAMILY, family);
  nftnl_set_set_str(set_.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(set_.get(), NFTNL_SET_NAME, set.c_str());
}

nftnl_set_elem* NftSetElements::NewElement() {
  nftnl_set_elem* elem = nftnl_set_elem_alloc();
  if (elem == nullptr) throw std::bad_alloc();
  nftnl_set_elem_add(set_.get(), elem);  // the set owns it
  ++count_;
  return elem;
}

NftSetElements& NftSetElements::Add(const NftKey& key) {
  nftnl_set_elem_set(NewElement(), NFTNL_SET_ELEM_KEY, key.bytes().data(), key.bytes().size());
  return *this;
}

NftSetElements& NftSetElements::AddRange(const NftKey& first, const NftKey& last) {
  nftnl_set_elem* elem = NewElement();
  nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY, first.bytes().data(), first.bytes().size());
  nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY_END, last.bytes().data(), last.bytes().size());
  return *this;
}

NftSetElements& NftSetElements::AddObject(const NftKey& key, const std::string& object) {
  nftnl_set_elem* elem = NewElement();
  nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY, key.bytes().data(), key.bytes().size());
  nftnl_set_elem_set_str(elem, NFTNL_SET_ELEM_OBJREF, object.c_str());
  return *this;
}

NftSetElements& NftSetElements::AddWithTimeout(const NftKey& key, std::uint64_t timeout_ms) {
  nftnl_set_elem* elem = NewElement();
  nftnl_set_elem_set(elem, NFTNL_SET_ELEM_KEY, key.bytes().data(), key.bytes().size());
  nftnl_set_elem_set_u64(elem, NFTNL_SET_ELEM_TIMEOUT, timeout_ms);
  return *this;
}

void NftSetElements::AppendTo(NftBatch& batch, bool add, bool exclusive) {
  if (count_ == 0) return;
  nftnl_set* set = set_.get();
  const std::uint16_t flags = add ? (exclusive ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_CREATE) : 0;
  batch.Add(add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, family_, flags,
            (add ? "add element " : "delete element ") + what_,
            [set](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, set); });
}

NftTable::NftTable(NftBatch& batch, std::uint16_t family, std::string name)
    : batch_(batch), family_(family), name_(std::move(name)) {}

std::string NftTable::what() const { return FamilyName(family_) + " " + name_; }

NftnlTable NftTable::Table() const {
  NftnlTable table(nftnl_table_alloc());
  if (!table) throw std::bad_alloc();
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, family_);
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, name_.c_str());
  return table;
}

void NftTable::Add(const std::string& comment) {
  NftnlTable table = Table();
  nftnl_udata_buf* udata = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
  nftnl_udata_put_strz(udata, NFTNL_UDATA_TABLE_COMMENT, comment.c_str());
  nftnl_table_set_data(table.get(), NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(udata), nftnl_udata_buf_len(udata));
  nftnl_udata_buf_free(udata);
  batch_.Add(NFT_MSG_NEWTABLE, family_, NLM_F_CREATE, "add table " + what(),
             [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
}

void NftTable::DeleteIfPresent() {
  NftnlTable table = Table();
  batch_.Add(NFT_MSG_NEWTABLE, family_, NLM_F_CREATE, "add table " + what(),
             [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
  batch_.Add(NFT_MSG_DELTABLE, family_, 0, "delete table " + what(),
             [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
}

void NftTable::AddSet(const NftSetSpec& spec) {
  NftnlSet set(nftnl_set_alloc());
  if (!set) throw std::bad_alloc();
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, family_);
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, name_.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, spec.name);
  // The kernel wants an id unique in the transaction (to refer to a set not
  // yet named); the message's position is one.
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, static_cast<std::uint32_t>(batch_.size() + 1));
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
  if (spec.size != 0) nftnl_set_set_u32(set.get(), NFTNL_SET_DESC_SIZE, spec.size);
  if (spec.string_key) {
    constexpr std::uint32_t kNftByteorderHost = 1;  // nft's BYTEORDER_HOST_ENDIAN
    nftnl_udata_buf* udata = nftnl_udata_buf_alloc(64);
    nftnl_udata_put_u32(udata, NFTNL_UDATA_SET_KEYBYTEORDER, kNftByteorderHost);
    nftnl_set_set_data(set.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata), nftnl_udata_buf_len(udata));
    nftnl_udata_buf_free(udata);
  }
  batch_.Add(NFT_MSG_NEWSET, family_, NLM_F_CREATE, "add set " + what() + " " + spec.name,
             [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, set.get()); });
}

void NftTable::AddBaseChain(const std::string& name, const char* type, std::uint32_t hook, std::int32_t priority) {
  NftnlChain chain(nftnl_chain_alloc());
  if (!chain) throw std::bad_alloc();
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, family_);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, name_.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, name.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, type);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, priority);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  batch_.Add(NFT_MSG_NEWCHAIN, family_, NLM_F_CREATE, "add chain " + what() + " " + name,
             [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, chain.get()); });
}

void NftTable::AddChain(const std::string& name) {
  NftnlChain chain(nftnl_chain_alloc());
  if (!chain) throw std::bad_alloc();
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, family_);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, name_.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, name.c_str());
  batch_.Add(NFT_MSG_NEWCHAIN, family_, NLM_F_CREATE, "add chain " + what() + " " + name,
             [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, chain.get()); });
}

RuleBuilder NftTable::Rule(const std::string& chain, std::string what) {
  return RuleBuilder(batch_, family_, name_, chain, std::move(what));
}

NftnlObj NewNftObject(std::uint16_t family, const std::string& table, const std::string& name, std::uint32_t type) {
  NftnlObj obj(nftnl_obj_alloc());
  if (!obj) throw std::bad_alloc();
  nftnl_obj_set_u32(obj.get(), NFTNL_OBJ_FAMILY, family);
  nftnl_obj_set_str(obj.get(), NFTNL_OBJ_TABLE, table.c_str());
  nftnl_obj_set_str(obj.get(), NFTNL_OBJ_NAME, name.c_str());
  nftnl_obj_set_u32(obj.get(), NFTNL_OBJ_TYPE, type);
  return obj;
}

void NftTable::AddObject(const nftnl_obj* object, const std::string& what) {
  batch_.Add(NFT_MSG_NEWOBJ, family_, NLM_F_CREATE | NLM_F_EXCL, "add " + what,
             [&](nlmsghdr* nlh) { nftnl_obj_nlmsg_build_payload(nlh, object); });
}

void NftTable::DeleteObject(const nftnl_obj* object, const std::string& what) {
  batch_.Add(NFT_MSG_DELOBJ, family_, 0, "delete " + what,
             [&](nlmsghdr* nlh) { nftnl_obj_nlmsg_build_payload(nlh, object); });
}

}  // namespace agentvm::net
