#include "supervisor/host_facts.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/unique_fd.h"

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
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe", errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::string arg0 = qemu_binary;
  std::string arg1 = "--version";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, arg0.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    return Fail(ErrnoError("run " + qemu_binary, spawned));
  }
  std::string output;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string line = output.substr(0, output.find('\n'));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || line.empty()) {
    return Fail(ErrorCode::kInternal, qemu_binary + " --version failed");
  }
  return line;
}

}  // namespace agentvm
