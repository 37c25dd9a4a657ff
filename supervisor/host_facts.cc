#include "supervisor/host_facts.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace agentvm {
namespace {

bool CpuInfoShowsVirtualization() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (!line.starts_with("flags")) continue;
    // Flags are space separated; pad so " vmx " matches only whole words.
    std::string padded = " " + line + " ";
    return padded.find(" vmx ") != std::string::npos || padded.find(" svm ") != std::string::npos;
  }
  return false;
}

}  // namespace

HostFacts ProbeHost() {
  HostFacts facts;
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    facts.kvm_usable = true;
    ::close(fd);
  }
  facts.cpu_virtualization = CpuInfoShowsVirtualization();
  facts.vhost_vsock = ::access("/dev/vhost-vsock", F_OK) == 0;
  return facts;
}

std::string_view AccelName(Accel accel) { return accel == Accel::kKvm ? "kvm" : "tcg"; }

std::string_view ChannelKindName(ChannelKind kind) {
  return kind == ChannelKind::kVsock ? "vsock" : "virtio-serial";
}

}  // namespace agentvm
