#include "netsetup/net_names.h"

#include <cstdint>
#include <cstdio>

namespace agentvm::net {

std::string TapNameForVm(std::string_view vm_id) {
  std::uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  for (unsigned char c : vm_id) {
    hash ^= c;
    hash *= 0x100000001b3ull;  // FNV-1a 64 prime
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%011llx", static_cast<unsigned long long>(hash & 0xfffffffffffull));
  return std::string(kTapPrefix) + hex;
}

std::string MacForAddress(Ipv4Address address) {
  char mac[18];
  std::snprintf(mac, sizeof mac, "02:00:%02x:%02x:%02x:%02x", (address.value >> 24) & 0xff,
                (address.value >> 16) & 0xff, (address.value >> 8) & 0xff, address.value & 0xff);
  return mac;
}

bool IsValidLinkName(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool ParseMac(std::string_view text, unsigned char out[6]) {
  if (text.size() != 17) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (int i = 0; i < 6; ++i) {
    int hi = nibble(text[i * 3]);
    int lo = nibble(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':')) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

}  // namespace agentvm::net
