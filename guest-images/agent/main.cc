// agentvm-guest: the agent inside every agentvm VM. Started (and respawned)
// by the guest's init; serves the host's control protocol on one channel.
#include <fcntl.h>
#include <signal.h>
#include <linux/magic.h>
#include <malloc.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "guest-images/agent/agent.h"
#include "guest-images/agent/channel.h"
#include "guest-images/agent/guest_system.h"
#include "guest-images/agent/log.h"
#include "protocol/frame.h"

namespace {

using namespace agentvm::guest;

constexpr char kUsage[] =
    R"(Usage: agentvm-guest [--fd N | --serial PATH | --vsock-port N] [OPTIONS]

The agentvm guest agent. Serves the host's control protocol (ping, exec,
write_file, read_file, shutdown, configure; see docs/guest-protocol.md) on
one channel.

Channel (at most one; default: discovered, see below):
  --fd N           serve on the already connected stream fd N; exit 0 when it
                   closes or on "shutdown" (tests on the host use this)
  --serial PATH    serve on a virtio-serial port device, e.g. /dev/vport0p1
  --vsock-port N   listen on AF_VSOCK (any CID) port N; one connection at a
                   time, a new one replaces the old

Discovery (no channel flag): agentvm.channel=serial|vsock on the kernel
command line (/proc/cmdline). serial: the port whose
/sys/class/virtio-ports/*/name is "agentvm.0", opened once read-write.
vsock: listen on port 1024. Without agentvm.channel: serial if that port
exists, else vsock. Waits (retrying) until the channel can be opened.

Options:
  --allow-poweroff  make "shutdown" sync and power the machine off also with
                    --serial or --vsock-port (always on with discovery, never
                    with --fd, where "shutdown" makes the agent exit 0)
  --dry-run-system FILE
                    "configure" changes nothing and appends what it would do
                    to FILE, one line per action (tests on a host use this).
                    Without it, configure acts on the machine when the
                    channel is a guest's (discovery, --serial, --vsock-port)
                    and is refused with --fd
  --dry-run-fail PREFIX
                    with --dry-run-system: fail each action whose line
                    starts with PREFIX (tests of the error paths)
  --exec-cgroups DIR
                    give each exec a cgroup of its own under DIR (in a
                    cgroup2 file system), so a timeout or a kill ends
                    everything it started. Default: /sys/fs/cgroup/agentvm-exec
                    (cgroup2 mounted there first if nothing is) for an agent
                    inside a guest; none (process groups only) with --fd
  --verbose         log every request
  --help            this text
  --version         print the protocol version

Logs go to stderr (the VM console). Not meant to run as PID 1.
)";

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "agentvm-guest: %s\n(see agentvm-guest --help)\n", message.c_str());
  std::exit(2);
}

std::optional<unsigned long> ParseNumber(std::string_view text) {
  unsigned long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The exec'd programs get fds 0-2 from the agent's pipes; make sure those
// numbers are taken so a pipe never lands on them.
void EnsureStdFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) ::open("/dev/null", O_RDWR);
  }
}

// Where a guest's execs get their cgroups: under the cgroup2 hierarchy at
// /sys/fs/cgroup, mounted here if the image's init left it empty. Empty if
// there is none to be had.
std::string GuestExecCgroupRoot() {
  constexpr const char* kCgroupMount = "/sys/fs/cgroup";
  struct statfs fs {};
  if (::statfs(kCgroupMount, &fs) != 0) return "";
  // favordynmods (Linux 6.0+): moving each exec into its cgroup then costs
  // no RCU grace period (about 5 ms per exec under TCG); older kernels
  // refuse the option and get the default.
  constexpr unsigned long kFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (fs.f_type == SYSFS_MAGIC && ::mount("cgroup2", kCgroupMount, "cgroup2", kFlags, "favordynmods") != 0 &&
      ::mount("cgroup2", kCgroupMount, "cgroup2", kFlags, nullptr) != 0) {
    LogWarn(std::string("mount cgroup2 on /sys/fs/cgroup: ") + std::strerror(errno));
    return "";
  }
  return std::string(kCgroupMount) + "/agentvm-exec";
}

void PowerOff() {
  ::sync();
  ::reboot(RB_POWER_OFF);
  // Not allowed to reboot() (no CAP_SYS_BOOT?): ask busybox init instead.
  ::kill(1, SIGUSR2);
}

}  // namespace

// Output, stdin and file buffers of 4 KiB to a few MiB come and go with
// every frame. glibc maps large ones afresh and unmaps or trims them on
// free, so every page of every frame cost a page fault: 24,000 faults per
// 50 MiB of exec output, more guest time under TCG than the copying. Kept
// in the heap they are reused. What is live stays bounded by the queues'
// caps; at most kKeepFreeBytes of freed memory stays with the agent.
void KeepBuffersInTheHeap() {
  constexpr int kMapAbove = 32 * 1024 * 1024;  // above kMaxFrameBytes: frames never mapped
  constexpr int kKeepFreeBytes = 16 * 1024 * 1024;
  ::mallopt(M_MMAP_THRESHOLD, kMapAbove);
  ::mallopt(M_TRIM_THRESHOLD, kKeepFreeBytes);
}

int main(int argc, char** argv) {
  KeepBuffersInTheHeap();
  std::optional<int> fd;
  std::optional<std::string> serial;
  std::optional<std::uint32_t> vsock_port;
  bool allow_poweroff = false;
  std::optional<std::string> exec_cgroups;
  std::optional<std::string> dry_run_system;
  std::string dry_run_fail;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) UsageError(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("agentvm-guest protocol %d\n", agentvm::protocol::kProtocolVersion);
      return 0;
    } else if (arg == "--fd") {
      auto n = ParseNumber(value());
      if (!n || *n > 1 << 20) UsageError("--fd wants a file descriptor number");
      fd = static_cast<int>(*n);
    } else if (arg == "--serial") {
      serial = std::string(value());
    } else if (arg == "--vsock-port") {
      auto n = ParseNumber(value());
      if (!n || *n > 0xffffffffUL) UsageError("--vsock-port wants a port number");
      vsock_port = static_cast<std::uint32_t>(*n);
    } else if (arg == "--allow-poweroff") {
      allow_poweroff = true;
    } else if (arg == "--dry-run-system") {
      dry_run_system = std::string(value());
    } else if (arg == "--dry-run-fail") {
      dry_run_fail = std::string(value());
    } else if (arg == "--exec-cgroups") {
      exec_cgroups = std::string(value());
    } else if (arg == "--verbose") {
      SetVerboseLogging(true);
    } else {
      UsageError("unknown argument " + std::string(arg));
    }
  }
  if (int(fd.has_value()) + int(serial.has_value()) + int(vsock_port.has_value()) > 1) {
    UsageError("--fd, --serial and --vsock-port exclude each other");
  }
  if (!dry_run_fail.empty() && !dry_run_system) UsageError("--dry-run-fail needs --dry-run-system");
  EnsureStdFds();
  // An ignored SIGCHLD is inherited across exec and would make the kernel
  // reap our children before we learn how they ended.
  ::signal(SIGCHLD, SIG_DFL);

  Channel channel;
  bool discovered = false;
  if (fd) {
    if (::fcntl(*fd, F_GETFD) < 0) UsageError("--fd " + std::to_string(*fd) + " is not open");
    int flags = ::fcntl(*fd, F_GETFL);
    ::fcntl(*fd, F_SETFL, flags | O_NONBLOCK);
    ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
    channel = Channel{ChannelKind::kFd, agentvm::UniqueFd(*fd), "fd " + std::to_string(*fd)};
  } else if (serial) {
    auto opened = OpenSerialPort(*serial);
    if (!opened) {
      LogWarn(opened.error());
      return 1;
    }
    channel = Channel{ChannelKind::kSerial, std::move(*opened), *serial};
  } else if (vsock_port) {
    auto opened = ListenVsock(*vsock_port);
    if (!opened) {
      LogWarn(opened.error());
      return 1;
    }
    channel = Channel{ChannelKind::kVsock, std::move(*opened),
                      "vsock port " + std::to_string(*vsock_port)};
  } else {
    auto found = DiscoverChannel(DiscoveryPaths{}, std::chrono::hours(24 * 365));
    if (!found) {
      LogWarn("no control channel: " + found.error());
      return 1;
    }
    channel = std::move(*found);
    discovered = true;
  }

  AgentOptions options;
  // The only place a real power-off is wired in: never for --fd (tests on a
  // development host run the agent as root).
  if (channel.kind != ChannelKind::kFd && (discovered || allow_poweroff))
    options.power_off = PowerOff;
  // Same rule for the clock, host name, network and RNG: never the real
  // machine's from an agent a test runs on its host with --fd.
  if (dry_run_system) {
    options.system = MakeRecordingGuestSystem(*dry_run_system, dry_run_fail);
  } else if (channel.kind != ChannelKind::kFd) {
    options.system = MakeRealGuestSystem();
  }
  if (exec_cgroups) {
    options.exec_cgroup_root = *exec_cgroups;
  } else if (channel.kind != ChannelKind::kFd) {
    options.exec_cgroup_root = GuestExecCgroupRoot();
  }
  Agent agent(std::move(channel), std::move(options));
  return agent.Run();
}
