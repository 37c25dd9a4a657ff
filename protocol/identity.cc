#include "protocol/identity.h"

namespace agentvm::protocol {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  return (c | 0x20) - 'a' + 10;
}

// A decimal number in [0, max] without sign or leading zeros.
bool ParseDecimal(std::string_view text, unsigned max) {
  if (text.empty() || text.size() > 3) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  unsigned value = 0;
  for (char c : text) {
    if (!IsDigit(c)) return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= max;
}

std::optional<std::string> Field(std::string_view name, std::string_view value,
                                 std::optional<std::string> problem) {
  if (!problem) return std::nullopt;
  constexpr std::size_t kShown = 80;  // a huge bad value is not echoed whole
  std::string shown(value.substr(0, kShown));
  if (value.size() > kShown) shown += "...";
  return std::string(name) + " \"" + shown + "\": " + *problem;
}

}  // namespace

std::optional<std::string> CheckIpv4(std::string_view text) {
  std::string_view rest = text;
  for (int i = 0; i < 4; ++i) {
    std::size_t dot = rest.find('.');
    std::string_view part = i < 3 ? rest.substr(0, dot) : rest;
    if ((i < 3 && dot == std::string_view::npos) || !ParseDecimal(part, 255)) {
      return "not an IPv4 address (a.b.c.d)";
    }
    if (i < 3) rest.remove_prefix(dot + 1);
  }
  return std::nullopt;
}

std::optional<std::string> CheckIpv4Prefix(std::string_view text) {
  std::size_t slash = text.find('/');
  if (slash == std::string_view::npos || CheckIpv4(text.substr(0, slash)) ||
      !ParseDecimal(text.substr(slash + 1), 32)) {
    return "not an IPv4 address with a prefix length (a.b.c.d/len)";
  }
  return std::nullopt;
}

std::optional<std::string> CheckMac(std::string_view text) {
  if (text.size() != 17) return "not a MAC address (xx:xx:xx:xx:xx:xx)";
  bool all_zero = true;
  for (std::size_t i = 0; i < 17; ++i) {
    bool ok = i % 3 == 2 ? text[i] == ':' : IsHex(text[i]);
    if (!ok) return "not a MAC address (xx:xx:xx:xx:xx:xx)";
    if (i % 3 != 2 && text[i] != '0') all_zero = false;
  }
  if (HexValue(text[1]) & 1) return "a multicast address, not a NIC's";
  if (all_zero) return "all zero";
  return std::nullopt;
}

std::optional<std::string> CheckHostname(std::string_view text) {
  if (text.empty()) return "empty";
  if (text.size() > kMaxHostnameBytes) {
    return "longer than " + std::to_string(kMaxHostnameBytes) + " bytes";
  }
  if (!IsAlnum(text.front())) return "must start with a letter or digit";
  for (char c : text) {
    if (!IsAlnum(c) && c != '-' && c != '.') return "only letters, digits, '-' and '.' allowed";
  }
  return std::nullopt;
}

namespace {

std::optional<std::string> CheckMount(const GuestMount& mount) {
  if (mount.tag.empty() || mount.tag.size() > kMaxMountTagBytes) {
    return "tag \"" + mount.tag + "\": 1.." + std::to_string(kMaxMountTagBytes) + " bytes";
  }
  const std::string& target = mount.target;
  if (target.size() < 2 || target[0] != '/' || target.size() > kMaxMountTargetBytes) {
    return "target \"" + target + "\": not an absolute path below / of at most " +
           std::to_string(kMaxMountTargetBytes) + " bytes";
  }
  for (unsigned char c : target) {
    if (c < 0x20 || c == 0x7f) return "target \"" + target + "\": a control character";
  }
  const std::string padded = target + "/";
  if (padded.find("/../") != std::string::npos || padded.find("/./") != std::string::npos) {
    return "target \"" + target + "\": '.' or '..' components";
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> CheckIdentity(const GuestIdentity& identity) {
  if (identity.network) {
    const GuestNetwork& net = *identity.network;
    if (net.address) {
      if (auto bad = Field("network.address", *net.address, CheckIpv4Prefix(*net.address)))
        return bad;
    }
    if (net.gateway) {
      if (auto bad = Field("network.gateway", *net.gateway, CheckIpv4(*net.gateway))) return bad;
    }
    if (net.dns) {
      if (auto bad = Field("network.dns", *net.dns, CheckIpv4(*net.dns))) return bad;
    }
    if (net.mac) {
      if (auto bad = Field("network.mac", *net.mac, CheckMac(*net.mac))) return bad;
    }
  }
  if (identity.hostname) {
    if (auto bad = Field("hostname", *identity.hostname, CheckHostname(*identity.hostname))) {
      return bad;
    }
  }
  if (identity.time_unix_ns && *identity.time_unix_ns < kMinTimeUnixNs) {
    return "time_unix_ns " + std::to_string(*identity.time_unix_ns) +
           ": before 2000-01-01 (seconds passed as nanoseconds?)";
  }
  if (identity.mounts.size() > kMaxGuestMounts) {
    return std::to_string(identity.mounts.size()) + " mounts: more than " + std::to_string(kMaxGuestMounts);
  }
  for (const GuestMount& mount : identity.mounts) {
    if (auto bad = CheckMount(mount)) return "mounts: " + *bad;
  }
  if (identity.entropy.size() > kMaxEntropyBytes) {
    return "entropy of " + std::to_string(identity.entropy.size()) + " bytes: more than " +
           std::to_string(kMaxEntropyBytes);
  }
  return std::nullopt;
}

}  // namespace agentvm::protocol
