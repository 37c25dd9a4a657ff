#include "supervisor/host_facts.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/unique_fd.h"
#include "supervisor/child_process.h"

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
  facts.kvm_usable = UniqueFd(::open("/dev/kvm", O_RDWR | O_CLOEXEC)).valid();
  facts.cpu_virtualization = CpuInfoShowsVirtualization();
  facts.vhost_vsock = ::access("/dev/vhost-vsock", F_OK) == 0;
  return facts;
}

std::string_view AccelName(Accel accel) { return accel == Accel::kKvm ? "kvm" : "tcg"; }

std::string_view ChannelKindName(ChannelKind kind) {
  return kind == ChannelKind::kVsock ? "vsock" : "virtio-serial";
}


Result<std::string> QemuVersion(const std::string& qemu_binary) {
  // The output goes to a memfd, which ChildProcess opens by its /proc path
  // like any output file: no pipe to drain while the child runs.
  UniqueFd output(::memfd_create("qemu-version", MFD_CLOEXEC));
  if (!output) return Fail(ErrnoError("memfd_create", errno));
  boost::asio::io_context io;  // holds the child's pidfd; never run
  auto child = ChildProcess::Launch(
      io.get_executor(), LaunchSpec{.argv = {qemu_binary, "--version"},
                                    .stdout_path = "/proc/self/fd/" + std::to_string(output.get())});
  if (!child) return Fail(child.error().Wrap("run " + qemu_binary));
  const ExitStatus status = (*child)->WaitBlocking();
  char buffer[4096];
  const ssize_t n = ::pread(output.get(), buffer, sizeof buffer, 0);
  const std::string text(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  const std::string line = text.substr(0, text.find('\n'));
  if (!status.success() || line.empty()) {
    return Fail(ErrorCode::kInternal, qemu_binary + " --version " + status.Describe());
  }
  return line;
}

}  // namespace agentvm
