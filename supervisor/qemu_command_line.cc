#include "supervisor/qemu_command_line.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "protocol/frame.h"
#include "supervisor/file_digest.h"

namespace agentvm {

std::string QemuOptEscape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

namespace {

nlohmann::json ReadOnlyQcow2(const std::string& node_name, const std::string& path) {
  return {
      {"driver", "qcow2"},
      {"node-name", node_name},
      {"read-only", true},
      {"file", {{"driver", "file"}, {"filename", path}, {"read-only", true}}},
  };
}

std::string NormalizeKernelArgs(const std::string& args) {
  std::istringstream in(args);
  std::string word;
  std::string out;
  while (in >> word) {
    if (word.starts_with("agentvm.")) continue;
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

std::string MemorySize(const QemuLaunchSpec& spec) { return "size=" + std::to_string(spec.memory_mib) + "M"; }

void AppendMachineAndMemory(const QemuLaunchSpec& spec, std::vector<std::string>& argv) {
  const std::string machine = "q35,accel=" + std::string(AccelName(spec.accel));
  switch (spec.memory) {
    case GuestMemory::kAnonymous:
      argv.insert(argv.end(), {"-machine", machine});
      return;
    case GuestMemory::kSharedMemfd:
      argv.insert(argv.end(), {"-machine", machine + ",memory-backend=mem0", "-object",
                               "memory-backend-memfd,id=mem0," + MemorySize(spec) + ",share=on"});
      return;
    case GuestMemory::kTemplateSource:
    case GuestMemory::kTemplateClone: {
      // Not readonly=on for clones: QEMU 7.2 then makes the RAM a ROM and
      // the guest hangs. The seals keep the template unchanged instead.
      const bool shared = spec.memory == GuestMemory::kTemplateSource;
      argv.insert(argv.end(), {"-machine", machine + ",memory-backend=pc.ram", "-object",
                               "memory-backend-file,id=pc.ram," + MemorySize(spec) +
                                   ",mem-path=/proc/self/fd/" + std::to_string(spec.memory_fd) +
                                   (shared ? ",share=on" : ",share=off")});
      return;
    }
  }
}

}  // namespace

std::string HotplugPortId(std::size_t i) { return "hp" + std::to_string(i); }

std::vector<std::string> QemuCommandLine(const QemuLaunchSpec& spec) {
  std::vector<std::string> argv = {
      spec.qemu_binary,
      // Nothing implicit: no default NIC, VGA, floppy, config file or monitor.
      "-nodefaults", "-no-user-config", "-display", "none",
      "-name", "guest=" + QemuOptEscape(spec.vm_id),
  };
  AppendMachineAndMemory(spec, argv);
  // KVM: the host's own CPU. TCG: everything QEMU can emulate ("max"); its
  // default model (qemu64) lacks AVX2, and native programs agents install
  // need it (Claude Code 2.x dies of SIGILL on qemu64).
  argv.insert(argv.end(), {"-cpu", spec.accel == Accel::kKvm ? "host" : "max"});
  argv.insert(argv.end(), {
      "-smp", std::to_string(spec.cpus),
      "-m", std::to_string(spec.memory_mib),
      // A guest reboot or panic ends the process, which the supervisor sees.
      "-no-reboot",
      // QEMU must never run helpers or gain privileges, whatever the guest does.
      "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
      "-msg", "timestamp=on",
      "-pidfile", spec.pidfile,
      "-kernel", spec.kernel,
      "-initrd", spec.initrd,
      "-append", spec.kernel_args,
  });

  // JSON -blockdev needs no comma escaping and names the backing chain
  // explicitly instead of trusting the paths stored in the qcow2 headers.
  nlohmann::json backing = ReadOnlyQcow2("base0", spec.base_image);
  if (!spec.frozen_image.empty()) {
    nlohmann::json frozen = ReadOnlyQcow2("frozen0", spec.frozen_image);
    frozen["backing"] = std::move(backing);
    backing = std::move(frozen);
  }
  nlohmann::json disk = {
      {"driver", "qcow2"},
      {"node-name", kDiskNodeName},
      {"file", {{"driver", "file"}, {"filename", spec.overlay}}},
      {"backing", std::move(backing)},
  };
  argv.insert(argv.end(), {"-blockdev", disk.dump(), "-device", "virtio-blk-pci,drive=disk0"});
  // Entropy from the host, so the guest's getrandom() is ready at boot.
  argv.insert(argv.end(), {"-object", "rng-random,id=rng0,filename=/dev/urandom",
                           "-device", "virtio-rng-pci,rng=rng0"});

  argv.insert(argv.end(), {
      "-chardev", "socket,id=qmp0,fd=" + std::to_string(spec.qmp_fd) + ",server=on,wait=off",
      "-mon", "chardev=qmp0,mode=control",
      "-chardev", spec.console_fd >= 0
                      ? "socket,id=console0,fd=" + std::to_string(spec.console_fd) + ",server=off"
                      : "file,id=console0,path=" + QemuOptEscape(spec.console_log),
      "-serial", "chardev:console0",
  });

  if (spec.channel == ChannelKind::kVsock) {
    argv.insert(argv.end(), {"-device", "vhost-vsock-pci,guest-cid=" + std::to_string(spec.guest_cid)});
  } else {
    argv.insert(argv.end(), {
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", "socket,id=agent0,fd=" + std::to_string(spec.agent_fd) + ",server=on,wait=off",
        "-device", "virtserialport,bus=vser0.0,chardev=agent0,name=" + std::string(protocol::kVirtioPortName),
    });
  }
  if (spec.tap_fd >= 0) {
    argv.insert(argv.end(), {
        "-netdev", "tap,id=net0,fd=" + std::to_string(spec.tap_fd),
        "-device", "virtio-net-pci,netdev=net0,mac=" + spec.mac,
    });
  }
  for (int i = 0; i < spec.hotplug_ports; ++i) {
    // io-reserve=0: a virtio device needs no I/O ports, and eight ports'
    // default 4 KiB windows would take half of the 64 KiB I/O space.
    argv.insert(argv.end(), {"-device", "pcie-root-port,id=" + HotplugPortId(i) +
                                            ",chassis=" + std::to_string(i + 1) + ",io-reserve=0"});
  }
  for (std::size_t i = 0; i < spec.fs_devices.size(); ++i) {
    const std::string id = "fs" + std::to_string(i);
    argv.insert(argv.end(), {
        "-chardev", "socket,id=" + id + ",fd=" + std::to_string(spec.fs_devices[i].fd) + ",server=off",
        "-device", "vhost-user-fs-pci,chardev=" + id + ",tag=" + QemuOptEscape(spec.fs_devices[i].tag),
    });
  }
  if (spec.incoming_defer) argv.insert(argv.end(), {"-incoming", "defer"});
  return argv;
}

std::string CommandLineHash(const QemuLaunchSpec& spec) {
  QemuLaunchSpec normal = spec;
  normal.vm_id = "vm";
  normal.kernel = "kernel";
  normal.initrd = "initrd";
  normal.kernel_args = NormalizeKernelArgs(spec.kernel_args);
  normal.base_image = "base";
  normal.overlay = "overlay";
  normal.frozen_image.clear();
  normal.console_log = "console";
  if (normal.console_fd >= 0) normal.console_fd = 4;
  if (normal.qmp_fd >= 0) normal.qmp_fd = 5;
  if (normal.agent_fd >= 0) normal.agent_fd = 6;
  normal.pidfile = "pidfile";
  if (normal.channel == ChannelKind::kVsock) normal.guest_cid = 3;
  if (normal.tap_fd >= 0) {
    normal.tap_fd = 3;
    normal.mac = "02:00:00:00:00:00";
  }
  normal.incoming_defer = false;
  if (normal.memory == GuestMemory::kTemplateClone) normal.memory = GuestMemory::kTemplateSource;
  if (normal.memory == GuestMemory::kTemplateSource) normal.memory_fd = 3;
  Xxh64 hash;
  for (const auto& arg : QemuCommandLine(normal)) {
    hash.Update(arg);
    hash.Update(std::string_view("\0", 1));
  }
  return Hex64(hash.Digest());
}

}  // namespace agentvm
