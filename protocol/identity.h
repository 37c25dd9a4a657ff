// A guest's identity as the host hands it over with a "configure" request:
// network, host name, wall clock, fresh entropy and the host directories to
// mount. A clone restored from a
// golden snapshot gets its own this way (docs/guest-protocol.md, configure).
//
// The validators are shared by both ends: the host refuses a bad identity
// before sending it, the guest refuses one before applying any of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentvm::protocol {

// Each field is optional; what is absent stays as it is in the guest.
struct GuestNetwork {
  std::optional<std::string> address;  // "10.101.0.5/16" for eth0; replaces its IPv4 addresses
  std::optional<std::string> gateway;  // "10.101.0.1": the default route
  std::optional<std::string> dns;      // "10.101.0.1": the only nameserver in /etc/resolv.conf
  std::optional<std::string> mac;      // "02:00:0a:65:00:05": unicast; set with the link down
};

// A virtiofs device of the VM to mount (docs/workspaces.md).
struct GuestMount {
  std::string tag;     // the vhost-user-fs device's tag
  std::string target;  // absolute; made (mkdir -p) when missing
  bool readonly = false;
};

struct GuestIdentity {
  std::optional<GuestNetwork> network;
  std::optional<std::string> hostname;
  std::optional<std::int64_t> time_unix_ns;  // CLOCK_REALTIME, ns since the epoch
  std::string entropy;                       // random bytes mixed into the guest's RNG; empty: none
  std::vector<GuestMount> mounts;            // mounted in order
};

// Limits of the validators below.
inline constexpr std::size_t kMaxEntropyBytes = 4096;
inline constexpr std::size_t kMaxHostnameBytes = 64;  // Linux HOST_NAME_MAX
inline constexpr std::size_t kMaxGuestMounts = 8;
inline constexpr std::size_t kMaxMountTagBytes = 36;  // virtio-fs config space
inline constexpr std::size_t kMaxMountTargetBytes = 1024;
// Times before 2000-01-01 are refused: they are almost surely seconds or
// milliseconds passed as nanoseconds.
inline constexpr std::int64_t kMinTimeUnixNs = 946684800LL * 1000000000LL;

// Each returns nullopt when `text` is acceptable, else why it is not.
std::optional<std::string> CheckIpv4(std::string_view text);        // "a.b.c.d"
std::optional<std::string> CheckIpv4Prefix(std::string_view text);  // "a.b.c.d/len"
std::optional<std::string> CheckMac(std::string_view text);         // unicast, not all zero
std::optional<std::string> CheckHostname(std::string_view text);

// nullopt when every present field is acceptable, else "<field> ...: why",
// naming the first bad field (e.g. "network.address \"x\": not a.b.c.d/len").
std::optional<std::string> CheckIdentity(const GuestIdentity& identity);

}  // namespace agentvm::protocol
