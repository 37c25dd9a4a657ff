// The nftables messages about tables, sets, chains, named objects and set
// elements, as a batch wants them (rules: nft_rule_builder.h). Messages name
// themselves ("add set inet agentvm vm_ports") for kernel errors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "netsetup/ipv4.h"
#include "netsetup/nft_batch.h"
#include "netsetup/nft_rule_builder.h"
#include "netsetup/nftnl_objects.h"

namespace agentvm::net {

// nft's data type numbers (src/datatype.h), which `nft list` uses to print
// keys; a concatenation's type is its parts' types, 6 bits each.
inline constexpr std::uint32_t kNftTypeIpv4 = 7;
inline constexpr std::uint32_t kNftTypeEther = 9;
inline constexpr std::uint32_t kNftTypeInetService = 13;
inline constexpr std::uint32_t kNftTypeIfname = 41;
constexpr std::uint32_t NftConcat(std::uint32_t a, std::uint32_t b) { return a << 6 | b; }

// Key part sizes in the kernel's registers: every part is padded to 4 bytes.
inline constexpr std::uint32_t kNftIfnameLen = 16;
inline constexpr std::uint32_t kNftEtherLen = 8;  // 6 + 2 padding
inline constexpr std::uint32_t kNftIpv4Len = 4;
inline constexpr std::uint32_t kNftPortLen = 4;   // 2 + 2 padding, when concatenated

// A set key as the kernel compares it: parts appended in order, padded.
class NftKey {
 public:
  NftKey& Ifname(const std::string& name);
  NftKey& Ipv4(Ipv4Address address);
  NftKey& Port(std::uint16_t port, bool padded);
  NftKey& Mac(const std::string& text);  // "aa:bb:cc:dd:ee:ff", already validated
  const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

struct NftSetSpec {
  const char* name;
  std::uint32_t key_type;
  std::uint32_t key_len;
  std::uint32_t flags = 0;
  std::uint32_t object_type = 0;              // NFT_OBJECT_*: a `type key : counter` map
  std::vector<std::uint8_t> concat_fields{};  // field lengths, for interval concatenations
  bool string_key = false;                    // tells `nft list` not to byte-swap the key
  std::uint32_t size = 0;                     // most elements; 0: no bound (sets the kernel fills need one)
};

// Elements of one set, sent as one NEWSETELEM or DELSETELEM message.
class NftSetElements {
 public:
  NftSetElements(std::uint16_t family, const std::string& table, const std::string& set);
  NftSetElements& Add(const NftKey& key);
  NftSetElements& AddRange(const NftKey& first, const NftKey& last);  // both ends included
  NftSetElements& AddObject(const NftKey& key, const std::string& object);
  // An element of a set with timeouts, removed by the kernel `timeout` after
  // it is added.
  NftSetElements& AddWithTimeout(const NftKey& key, std::uint64_t timeout_ms);
  // Appends NEWSETELEM (failing on an element that exists unless
  // `exclusive` is false: then an existing element is left as it is) or
  // DELSETELEM; nothing when there are no elements.
  void AppendTo(NftBatch& batch, bool add, bool exclusive = true);

 private:
  nftnl_set_elem* NewElement();

  std::uint16_t family_;
  std::string what_;  // "bridge agentvm vm_taps"
  NftnlSet set_;
  std::size_t count_ = 0;
};

// A named object (NFT_OBJECT_COUNTER, NFT_OBJECT_LIMIT, ...) of a table,
// for the caller to set its type's attributes on.
NftnlObj NewNftObject(std::uint16_t family, const std::string& table, const std::string& name, std::uint32_t type);

// One table (family and name) and what goes in it, appended to a batch.
class NftTable {
 public:
  NftTable(NftBatch& batch, std::uint16_t family, std::string name);

  void Add(const std::string& comment);
  // Deleting a table needs it to exist; adding it first (a no-op when it
  // does) makes "delete if present" one pair of messages in the same batch.
  void DeleteIfPresent();
  void AddSet(const NftSetSpec& spec);
  // Base chains get policy accept: we only decide about our own traffic.
  void AddBaseChain(const std::string& name, const char* type, std::uint32_t hook, std::int32_t priority);
  void AddChain(const std::string& name);
  RuleBuilder Rule(const std::string& chain, std::string what);

  NftnlObj NewObject(const std::string& name, std::uint32_t type) const {
    return NewNftObject(family_, name_, name, type);
  }
  void AddObject(const nftnl_obj* object, const std::string& what);  // fails if it exists
  void DeleteObject(const nftnl_obj* object, const std::string& what);
  NftSetElements Elements(const std::string& set) const { return NftSetElements(family_, name_, set); }

  // "inet agentvm"
  std::string what() const;

 private:
  NftnlTable Table() const;

  NftBatch& batch_;
  std::uint16_t family_;
  std::string name_;
};

}  // namespace agentvm::net
