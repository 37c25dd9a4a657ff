// The little of the DNS wire format (RFC 1035) the forwarder needs to filter
// by name: the one question of a query, a REFUSED answer to it, and the IPv4
// addresses an answer gives for that question after following CNAMEs. Pure;
// every read is bounds-checked, compression pointers may only point backwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "netsetup/ipv4.h"

namespace agentvm::net {

inline constexpr std::uint16_t kDnsTypeA = 1;
inline constexpr std::uint16_t kDnsTypeCname = 5;
inline constexpr std::uint16_t kDnsTypeAaaa = 28;
inline constexpr std::uint16_t kDnsTypeSvcb = 64;
inline constexpr std::uint16_t kDnsTypeHttps = 65;
inline constexpr std::uint8_t kDnsRcodeServfail = 2;
inline constexpr std::uint8_t kDnsRcodeRefused = 5;

struct DnsQuestion {
  // Lower case, dots between labels, no trailing dot; "" for the root.
  std::string name;
  std::uint16_t type = 0;
  std::uint16_t klass = 0;
  std::size_t end = 0;  // offset just past the question
  // Every label holds only letters, digits, '-' and '_': a name a domain
  // list can judge (a '.' or odd byte inside a label could fake another).
  bool plain = true;
};

// The question of a query that is a plain standard query: QR clear, opcode
// QUERY, exactly one question, no answer or authority records (EDNS in the
// additional section is fine). nullopt for anything else.
std::optional<DnsQuestion> ParseStandardQuery(std::span<const std::uint8_t> message);

// "A", "AAAA", ... or "TYPE<n>".
std::string DnsTypeName(std::uint16_t type);

// An answer without records to `query` (whose question is `question`): same
// id, RD and question, QR and RA set, rcode `rcode` (kDnsRcodeRefused,
// kDnsRcodeServfail).
std::vector<std::uint8_t> ErrorReply(std::span<const std::uint8_t> query, const DnsQuestion& question,
                                     std::uint8_t rcode);

struct DnsAddress {
  Ipv4Address address;
  std::uint32_t ttl = 0;  // seconds, the smallest along the CNAME chain
};

// The A records of a reply that answer `name`, directly or through a chain
// of CNAMEs in the answer section (at most 16 deep). Records for other names
// are ignored: they are not what the guest asked. Empty for a malformed
// reply, a reply without answers, or one that is not a response.
std::vector<DnsAddress> AnswerAddresses(std::span<const std::uint8_t> reply, const std::string& name);

}  // namespace agentvm::net
