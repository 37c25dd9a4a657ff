// The QEMU command line of a VM, as a pure function of its launch spec, so the
// exact argv is golden-tested and reviewable in one place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/host_facts.h"

namespace agentvm {

// QEMU's node name for a VM's writable top layer (its overlay): named
// snapshots are saved to and loaded from it.
inline constexpr std::string_view kDiskNodeName = "disk0";

// Where guest RAM lives (docs/snapshots.md, "Memory templates").
enum class GuestMemory {
  kAnonymous,       // plain -m: QEMU's own private memory
  kSharedMemfd,     // a memfd QEMU makes and maps shared: vhost-user devices (virtiofs) need it
  kTemplateSource,  // memory_fd mapped shared: a golden VM whose RAM becomes a template
  kTemplateClone,   // memory_fd, a sealed template, mapped private: copy on write
};

struct QemuLaunchSpec {
  std::string qemu_binary = "qemu-system-x86_64";
  std::string vm_id;
  Accel accel = Accel::kTcg;
  int cpus = 1;
  int memory_mib = 256;
  GuestMemory memory = GuestMemory::kAnonymous;
  // The template kinds: an fd QEMU inherits and opens as /proc/self/fd/N
  // (QEMU 7.2's memory-backend-file takes a path, not an fd). The backend's
  // id is `pc.ram`, the RAM block name plain -m gives, so states of the
  // source and its clones name the same block.
  int memory_fd = -1;

  // Direct kernel boot; kernel_args is the full command line.
  std::string kernel;
  std::string initrd;
  std::string kernel_args;

  std::string base_image;  // read-only qcow2 the overlay is layered on
  std::string overlay;     // this VM's writable qcow2
  // A restored clone's chain is overlay -> frozen_image -> base_image, where
  // frozen_image is the disk the golden snapshot's VM ran on (read-only now).
  // Empty: overlay -> base_image.
  std::string frozen_image;

  // QMP and (virtio-serial) the agent's port are served on listening unix
  // sockets the daemon made (ListenUnix) and QEMU inherits, so the daemon's
  // connects succeed at once rather than polling until QEMU listens.
  int qmp_fd = -1;
  // The serial console: an inherited socket fd the daemon drains
  // (ConsoleLog); below 0, the file console_log (tests that run QEMU
  // themselves).
  int console_fd = -1;
  std::string console_log;
  std::string pidfile;

  ChannelKind channel = ChannelKind::kVirtioSerial;
  int agent_fd = -1;            // virtio-serial: the agent port's listener
  std::uint32_t guest_cid = 0;  // vsock: the guest's context id (>= 3)

  // The VM's NIC: a tap the supervisor opened, handed to QEMU as an inherited
  // fd (QEMU never opens taps or runs scripts). tap_fd < 0: no NIC at all.
  int tap_fd = -1;
  std::string mac;  // "02:xx:xx:xx:xx:xx"

  // Start paused, waiting for `migrate-incoming` (restore of a saved state).
  bool incoming_defer = false;

  // Host directories shared over virtiofs: one vhost-user-fs device each, on
  // a socket already connected to its virtiofsd, handed over as an
  // inherited fd. They need `memory` kSharedMemfd (virtiofsd maps guest RAM).
  struct FsDevice {
    std::string tag;
    int fd = -1;
  };
  std::vector<FsDevice> fs_devices;

  // Empty PCI Express root ports `hp0`, `hp1`, ... a device can be
  // hot-plugged into (q35's root bus takes none): a clone of a golden
  // snapshot gets its virtiofs devices there after the restore, so the
  // golden VM has them too (docs/workspaces.md, "Snapshots and pools").
  int hotplug_ports = 0;
};

// The id of root port `i` (QemuLaunchSpec::hotplug_ports).
std::string HotplugPortId(std::size_t i);

// argv[0] is spec.qemu_binary.
std::vector<std::string> QemuCommandLine(const QemuLaunchSpec& spec);

// QEMU's option syntax splits on commas; a literal comma is written twice.
std::string QemuOptEscape(const std::string& value);

// Hash of the QEMU command line `spec` produces, with what differs between
// two clones of one profile normalized away: VM id, every path (the image's
// files are covered by ImageIdentity), tap fd and MAC (only whether there is
// a NIC stays), vsock CID, -incoming, the frozen disk layer, agentvm.*
// kernel arguments (per-VM identity, read at boot, which a restored guest
// has long passed) and the numbers of inherited fds. Any other change (QEMU
// binary, accelerator, cpus, memory, devices, other kernel arguments)
// changes the hash. A template's source and
// its clones hash alike (the memory fd and sharing are normalized away).
std::string CommandLineHash(const QemuLaunchSpec& spec);

}  // namespace agentvm
