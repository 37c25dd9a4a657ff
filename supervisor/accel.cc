#include "supervisor/accel.h"

namespace agentvm {

Result<AccelChoice> ChooseAccel(const std::string& mode, const HostFacts& host) {
  const bool kvm_ok = host.kvm_usable && host.cpu_virtualization;
  if (mode == "tcg") return AccelChoice{Accel::kTcg, ""};
  if (mode == "kvm") {
    if (!kvm_ok) {
      return Fail(ErrorCode::kInvalidArgument,
                  host.kvm_usable ? "accel kvm: the CPU shows neither vmx nor svm"
                                  : "accel kvm: /dev/kvm cannot be opened");
    }
    return AccelChoice{Accel::kKvm, ""};
  }
  if (mode == "auto") {
    if (kvm_ok) return AccelChoice{Accel::kKvm, ""};
    return AccelChoice{Accel::kTcg,
                       host.kvm_usable ? "KVM unusable (no vmx/svm CPU flag); using TCG, expect slow guests"
                                       : "KVM unavailable (/dev/kvm does not open); using TCG, expect slow guests"};
  }
  return Fail(ErrorCode::kInvalidArgument, "accel must be auto, kvm or tcg, not '" + mode + "'");
}

ChannelKind ChooseChannel(const HostFacts& host) {
  return host.vhost_vsock ? ChannelKind::kVsock : ChannelKind::kVirtioSerial;
}

}  // namespace agentvm
