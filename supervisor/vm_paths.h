// Where one VM's files live. Runtime files (sockets, logs, pidfile) go under
// the run dir, which is tmpfs on a real host; the overlay goes under the state
// dir, which survives a reboot of the daemon.
#pragma once

#include <filesystem>
#include <string>

namespace agentvm {

struct VmPaths {
  std::filesystem::path runtime_dir;  // <run_dir>/vms/<id>
  std::filesystem::path disk_dir;     // <state_dir>/vms/<id>

  static VmPaths For(const std::string& run_dir, const std::string& state_dir, const std::string& id) {
    return VmPaths{std::filesystem::path(run_dir) / "vms" / id, std::filesystem::path(state_dir) / "vms" / id};
  }

  std::filesystem::path overlay() const { return disk_dir / "overlay.qcow2"; }
  std::filesystem::path qmp_socket() const { return runtime_dir / "qmp.sock"; }
  std::filesystem::path agent_socket() const { return runtime_dir / "agent.sock"; }
  std::filesystem::path console_log() const { return runtime_dir / "console.log"; }
  std::filesystem::path qemu_log() const { return runtime_dir / "qemu.log"; }
  std::filesystem::path pidfile() const { return runtime_dir / "qemu.pid"; }
};

}  // namespace agentvm
