// How the agent finds and opens its control channel inside the guest:
// a virtio-serial port named agentvm.0 or an AF_VSOCK listener, chosen by
// agentvm.channel= on the kernel command line. Tests use an inherited fd.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.h"

namespace agentvm::guest {

enum class ChannelKind {
  kFd,      // a connected stream; its end ends the agent
  kSerial,  // a virtio-serial port; read()==0/POLLHUP means "host not connected"
  kVsock,   // a listening AF_VSOCK socket; one connection at a time
};

struct Channel {
  ChannelKind kind = ChannelKind::kFd;
  UniqueFd fd;
  std::string description;  // for logs: "fd 3", "/dev/vport0p1", "vsock port 1024"
};

// The value of `key=` in a kernel command line, nullopt when absent.
std::optional<std::string> CmdlineValue(std::string_view cmdline, std::string_view key);

// "/dev/<port>" for the entry of `class_dir` (normally /sys/class/virtio-ports)
// whose "name" file holds `name`.
std::optional<std::string> FindVirtioPort(const std::string& class_dir, std::string_view name);

// One non-blocking read-write fd: the port opens exclusively, so both
// directions share it.
std::expected<UniqueFd, std::string> OpenSerialPort(const std::string& path);
std::expected<UniqueFd, std::string> ListenVsock(std::uint32_t port);

struct DiscoveryPaths {
  std::string cmdline = "/proc/cmdline";
  std::string virtio_ports = "/sys/class/virtio-ports";
};

// The default mode: agentvm.channel=serial|vsock from the command line
// (absent: serial when the port exists, else vsock). Retries until the
// channel can be opened (modules may still be loading) or `give_up` passes.
std::expected<Channel, std::string> DiscoverChannel(const DiscoveryPaths& paths,
                                                    std::chrono::milliseconds give_up);

}  // namespace agentvm::guest
