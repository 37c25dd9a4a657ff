#include "netsetup/dns_message.h"

#include <algorithm>
#include <map>

namespace agentvm::net {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr int kMaxCnameDepth = 16;
constexpr std::uint16_t kClassIn = 1;

std::uint16_t U16(std::span<const std::uint8_t> m, std::size_t at) {
  return static_cast<std::uint16_t>((m[at] << 8) | m[at + 1]);
}

std::uint32_t U32(std::span<const std::uint8_t> m, std::size_t at) {
  return (std::uint32_t{m[at]} << 24) | (std::uint32_t{m[at + 1]} << 16) | (std::uint32_t{m[at + 2]} << 8) | m[at + 3];
}

bool LabelChar(std::uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

struct Name {
  std::string text;
  std::size_t next = 0;  // offset after the name where it started
  bool plain = true;     // every label only LabelChar bytes (after lower-casing)
};

// Reads the (possibly compressed) name at `at`.
std::optional<Name> ReadName(std::span<const std::uint8_t> m, std::size_t at) {
  Name name;
  std::size_t pos = at;
  bool jumped = false;
  for (int steps = 0; steps < 128; ++steps) {
    if (pos >= m.size()) return std::nullopt;
    const std::uint8_t len = m[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= m.size()) return std::nullopt;
      const std::size_t target = ((len & 0x3f) << 8) | m[pos + 1];
      if (target >= pos) return std::nullopt;  // only backwards: no loops
      if (!jumped) name.next = pos + 2;
      jumped = true;
      pos = target;
      continue;
    }
    if ((len & 0xc0) != 0) return std::nullopt;
    if (len == 0) {
      if (!jumped) name.next = pos + 1;
      return name.text.size() > 253 ? std::nullopt : std::optional<Name>(std::move(name));
    }
    if (pos + 1 + len > m.size()) return std::nullopt;
    if (!name.text.empty()) name.text += '.';
    for (std::size_t i = pos + 1; i < pos + 1 + len; ++i) {
      std::uint8_t c = m[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<std::uint8_t>(c - 'A' + 'a');
      if (!LabelChar(c)) name.plain = false;
      name.text += static_cast<char>(c);
    }
    pos += 1 + len;
  }
  return std::nullopt;
}

}  // namespace

std::optional<DnsQuestion> ParseStandardQuery(std::span<const std::uint8_t> m) {
  if (m.size() < kHeaderSize) return std::nullopt;
  const bool response = (m[2] & 0x80) != 0;
  const int opcode = (m[2] >> 3) & 0x0f;
  if (response || opcode != 0) return std::nullopt;
  if (U16(m, 4) != 1 || U16(m, 6) != 0 || U16(m, 8) != 0) return std::nullopt;
  auto name = ReadName(m, kHeaderSize);
  if (!name || name->next + 4 > m.size()) return std::nullopt;
  return DnsQuestion{.name = std::move(name->text),
                     .type = U16(m, name->next),
                     .klass = U16(m, name->next + 2),
                     .end = name->next + 4,
                     .plain = name->plain};
}

std::string DnsTypeName(std::uint16_t type) {
  switch (type) {
    case kDnsTypeA: return "A";
    case kDnsTypeCname: return "CNAME";
    case kDnsTypeAaaa: return "AAAA";
    case kDnsTypeSvcb: return "SVCB";
    case kDnsTypeHttps: return "HTTPS";
    case 2: return "NS";
    case 6: return "SOA";
    case 12: return "PTR";
    case 15: return "MX";
    case 16: return "TXT";
    case 33: return "SRV";
    default: return "TYPE" + std::to_string(type);
  }
}

std::vector<std::uint8_t> ErrorReply(std::span<const std::uint8_t> query, const DnsQuestion& question,
                                     std::uint8_t rcode) {
  std::vector<std::uint8_t> reply(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(question.end));
  reply[2] = static_cast<std::uint8_t>(0x80 | (query[2] & 0x01));  // QR, opcode QUERY, RD as asked
  reply[3] = static_cast<std::uint8_t>(0x80 | (rcode & 0x0f));      // RA, the rcode
  for (std::size_t i = 6; i < kHeaderSize; ++i) reply[i] = 0;       // no answer, authority, additional
  return reply;
}

std::vector<DnsAddress> AnswerAddresses(std::span<const std::uint8_t> m, const std::string& name) {
  if (m.size() < kHeaderSize || (m[2] & 0x80) == 0 || (m[3] & 0x0f) != 0) return {};
  const std::uint16_t questions = U16(m, 4);
  const std::uint16_t answers = U16(m, 6);
  std::size_t pos = kHeaderSize;
  for (std::uint16_t i = 0; i < questions; ++i) {
    auto skipped = ReadName(m, pos);
    if (!skipped || skipped->next + 4 > m.size()) return {};
    pos = skipped->next + 4;
  }
  struct Cname {
    std::string target;
    std::uint32_t ttl;
  };
  std::map<std::string, Cname> cnames;
  std::vector<std::pair<std::string, DnsAddress>> records;
  for (std::uint16_t i = 0; i < answers; ++i) {
    auto owner = ReadName(m, pos);
    if (!owner || owner->next + 10 > m.size()) return {};
    const std::uint16_t type = U16(m, owner->next);
    const std::uint16_t klass = U16(m, owner->next + 2);
    const std::uint32_t ttl = U32(m, owner->next + 4);
    const std::uint16_t length = U16(m, owner->next + 8);
    const std::size_t data = owner->next + 10;
    if (data + length > m.size()) return {};
    if (klass == kClassIn && type == kDnsTypeA && length == 4) {
      records.push_back({owner->text, DnsAddress{Ipv4Address{U32(m, data)}, ttl}});
    } else if (klass == kClassIn && type == kDnsTypeCname) {
      auto target = ReadName(m, data);
      if (!target) return {};
      cnames.emplace(owner->text, Cname{target->text, ttl});
    }
    pos = data + length;
  }
  // Follow the chain from the question's name; the ttl of an address is the
  // smallest along the way (a CNAME that expires earlier ends the mapping).
  std::map<std::string, std::uint32_t> chain{{name, UINT32_MAX}};
  std::string current = name;
  std::uint32_t ttl = UINT32_MAX;
  for (int depth = 0; depth < kMaxCnameDepth; ++depth) {
    auto it = cnames.find(current);
    if (it == cnames.end() || chain.contains(it->second.target)) break;
    ttl = std::min(ttl, it->second.ttl);
    current = it->second.target;
    chain.emplace(current, ttl);
  }
  std::vector<DnsAddress> addresses;
  for (const auto& [owner, record] : records) {
    auto link = chain.find(owner);
    if (link == chain.end()) continue;
    addresses.push_back(DnsAddress{record.address, std::min(record.ttl, link->second)});
  }
  return addresses;
}

}  // namespace agentvm::net
