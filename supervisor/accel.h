// Choosing the accelerator and the control channel from the host's facts.
#pragma once

#include <string>

#include "common/error.h"
#include "supervisor/host_facts.h"

namespace agentvm {

struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string warning;  // one line to log when `auto` fell back to TCG
};

// `mode` is "auto", "kvm" or "tcg". `auto` takes KVM only when /dev/kvm opens
// and the CPU advertises vmx/svm; otherwise TCG with a warning. `kvm` fails
// when KVM is not usable rather than silently running 20x slower.
Result<AccelChoice> ChooseAccel(const std::string& mode, const HostFacts& host);

// vhost-vsock where the host has it, else virtio-serial.
ChannelKind ChooseChannel(const HostFacts& host);

}  // namespace agentvm
