// What the host offers a VM: probed once at start-up, passed around as plain
// data so the choices made from it (accelerator, control channel) are pure and
// unit-tested with made-up hosts.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm {

struct HostFacts {
  bool kvm_usable = false;        // /dev/kvm opens read-write
  bool cpu_virtualization = false;  // /proc/cpuinfo shows vmx or svm
  bool vhost_vsock = false;       // /dev/vhost-vsock exists
};

HostFacts ProbeHost();

enum class Accel { kKvm, kTcg };
enum class ChannelKind { kVsock, kVirtioSerial };

std::string_view AccelName(Accel accel);
std::string_view ChannelKindName(ChannelKind kind);


// First line of `qemu_binary --version`, e.g. "QEMU emulator version 7.2.22
// (Debian 1:7.2+dfsg-7+deb12u18+b3)". Runs the binary and blocks until it
// exits: call once at startup.
Result<std::string> QemuVersion(const std::string& qemu_binary);

}  // namespace agentvm
