// Everything a "configure" request changes in the guest, behind one small
// interface. The real implementation acts on the machine; the recording one
// (agentvm-guest --dry-run-system FILE) writes one line per action instead,
// so tests that run the agent on a development host as root never touch the
// host's clock, host name, network or RNG.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace agentvm::guest {

class GuestSystem {
 public:
  // The error is a message for a person, e.g. "clock_settime: Operation not permitted".
  using Status = std::expected<void, std::string>;

  virtual ~GuestSystem() = default;

  virtual Status SetClock(std::int64_t unix_ns) = 0;  // CLOCK_REALTIME
  // Mixes `bytes` into the kernel's pool credited at 8 bits per byte
  // (RNDADDENTROPY), then reseeds the CRNG now (RNDRESEEDCRNG), so output
  // from here on differs from any other clone's.
  virtual Status AddEntropy(std::string_view bytes) = 0;
  virtual Status SetHostname(const std::string& name) = 0;         // sethostname and /etc/hostname
  virtual Status RunIp(const std::vector<std::string>& args) = 0;  // `ip args...`
  virtual Status WriteResolvConf(const std::string& content) = 0;  // replaces /etc/resolv.conf
  // Makes `target` (and its parents) when missing and mounts the virtiofs
  // device tagged `tag` there, read-only when asked.
  virtual Status MountVirtiofs(const std::string& tag, const std::string& target, bool readonly) = 0;
};

std::unique_ptr<GuestSystem> MakeRealGuestSystem();

// Appends one line per action to `path` and changes nothing:
//   clock <unix_ns>
//   entropy <bytes> <hex of the bytes>
//   hostname <name>
//   ip <args separated by spaces>
//   resolv.conf <content, newlines written as \n>
//   mount <tag> <target> ro|rw
// An action whose line would start with `fail_prefix` (when not empty) fails
// with "injected failure" and is not recorded: tests of the error paths.
std::unique_ptr<GuestSystem> MakeRecordingGuestSystem(std::string path, std::string fail_prefix);

}  // namespace agentvm::guest
