// pidfd system calls. glibc 2.36's <sys/pidfd.h> declares them without C
// linkage, so C++ cannot link against it; call the kernel directly.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <csignal>

namespace agentvm {

// A descriptor that refers to process `pid` for its whole life (no pid reuse
// races) and polls readable once it has exited. -1 and errno on failure.
inline int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

inline int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

}  // namespace agentvm
