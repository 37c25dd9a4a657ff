// VmHost: everything a Vm asks of the machine it runs on, as one small
// interface (leveldb's Env, ninja's DiskInterface): making the overlay,
// launching QEMU, connecting to QEMU's monitor and to the guest's agent. The
// Vm's state machine (vm.cc) only decides; RealVmHost does, with qemu-img,
// ChildProcess and real sockets, and unit tests hand a Vm a fake
// (supervisor/testing/fake_vm_host.h) to drive every state without QEMU.
//
// A launch names everything QEMU touches (QemuLaunch): its argv, the fds it
// inherits, the files it reads and the ones it writes. A host that confines
// QEMU (its own uid, mount and pid namespaces) builds its jail from exactly
// that and launches the same argv inside it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "common/unique_fd.h"
#include "supervisor/child_process.h"
#include "supervisor/guest_connector.h"
#include "supervisor/host_facts.h"
#include "supervisor/overlay_creator.h"
#include "supervisor/qemu_command_line.h"
#include "supervisor/virtiofsd.h"
#include "supervisor/vm_paths.h"

namespace agentvm {
namespace qmp {
class QmpClient;
}
class Jailer;

// One QEMU to start: what it runs and what of the host it needs.
struct QemuLaunch {
  std::string vm_id;
  std::vector<std::string> argv;  // QemuCommandLine(); argv[0] is the QEMU binary
  std::string stderr_path;        // QEMU's own messages (qemu.log), appended to
  // Open in QEMU under the same numbers (the tap, the console, virtiofs
  // sockets, guest RAM). Everything else the daemon has open is closed on exec.
  std::vector<int> pass_fds;
  // QEMU opens one of pass_fds by its /proc/self/fd path (guest RAM of a
  // memory template): a jail mounts a proc of its own PID namespace.
  bool opens_fds_by_path = false;
  std::vector<std::string> read_only_paths;  // kernel, initrd, base image, frozen disk
  // The runtime dir (QEMU's logs and pidfile) and the overlay.
  std::vector<std::string> writable_paths;
  std::vector<std::string> devices;  // device nodes QEMU opens (/dev/urandom, /dev/kvm, ...)
  int memory_mib = 0;                // guest RAM, which bounds QEMU's memory
  Accel accel = Accel::kTcg;
};

// What QemuCommandLine(spec) needs of the host, for the VM whose files are
// at `paths`.
QemuLaunch QemuLaunchFor(const QemuLaunchSpec& spec, const VmPaths& paths);

// The sockets QEMU serves QMP and (virtio-serial) the agent's port on,
// listening at paths.qmp_socket() and paths.agent_socket() (ListenUnix) and
// put into `spec` as the fds QEMU inherits. Made by the daemon, a connect
// succeeds at once instead of polling until QEMU has started (tens of ms of
// a restore). These copies close once QEMU has inherited its own; the
// socket files stay for a restarted daemon.
struct QemuListeners {
  UniqueFd qmp;
  UniqueFd agent;  // none for vsock
};
Result<QemuListeners> ListenForQemu(const VmPaths& paths, QemuLaunchSpec& spec);

// Where the guest's agent listens: the unix socket QEMU serves the
// virtio-serial port on, or the guest's vsock CID.
struct GuestAddress {
  ChannelKind channel = ChannelKind::kVirtioSerial;
  std::string unix_socket;
  std::uint32_t cid = 0;
};

// A launched QEMU. Destroying one that still runs kills it (SIGKILL) and
// reaps it: no code path leaks a QEMU.
class QemuProcess {
 public:
  virtual ~QemuProcess() = default;
  virtual pid_t pid() const = 0;
  // Set once the process has exited and WaitExit() has seen it.
  virtual const std::optional<ExitStatus>& exit_status() const = 0;
  // Completes when QEMU has exited; any number of coroutines may wait.
  virtual boost::asio::awaitable<ExitStatus> WaitExit() = 0;
  // Sends `signal`, unless QEMU is already gone.
  virtual void Kill(int signal) = 0;
};

class VmHost {
 public:
  virtual ~VmHost() = default;

  // Creates the qcow2 `overlay` of `size_bytes` over `backing` (also qcow2)
  // without opening `backing`: a golden snapshot's frozen disk had a guest
  // behind its QEMU, and nothing a guest may have shaped is parsed outside
  // a jail. Its tool's messages go to `log_path`.
  virtual boost::asio::awaitable<Result<void>> CreateOverlay(std::string backing, std::uint64_t size_bytes,
                                                             std::string overlay, std::string log_path) = 0;
  // Starts QEMU; returns once it runs (not once it answers).
  virtual boost::asio::awaitable<Result<std::unique_ptr<QemuProcess>>> LaunchQemu(QemuLaunch launch) = 0;
  // Starts the virtiofsd of one of the VM's mounts (virtiofsd.h), before
  // the QEMU that uses it.
  virtual Result<StartedVirtiofsd> LaunchVirtiofsd(VirtiofsdLaunch launch) = 0;
  // Connects to QEMU's monitor socket (retrying while QEMU starts) and
  // negotiates QMP, all within `timeout`.
  virtual boost::asio::awaitable<Result<std::unique_ptr<qmp::QmpClient>>> ConnectQmp(
      std::string socket_path, std::chrono::milliseconds timeout, std::string vm_id) = 0;
  // Connects to the guest's agent (retrying while the guest boots) within
  // `timeout`.
  virtual boost::asio::awaitable<Result<GuestSocket>> ConnectGuest(GuestAddress address,
                                                                   std::chrono::milliseconds timeout) = 0;
};

// The host as it is: qemu-img, QEMU as a ChildProcess (jailed by `jailer`
// unless it is null: `jail: off`), unix and vsock sockets.
class RealVmHost final : public VmHost {
 public:
  RealVmHost(boost::asio::any_io_executor executor, std::string qemu_img_binary,
             std::shared_ptr<Jailer> jailer);

  boost::asio::awaitable<Result<void>> CreateOverlay(std::string backing, std::uint64_t size_bytes,
                                                     std::string overlay, std::string log_path) override;
  boost::asio::awaitable<Result<std::unique_ptr<QemuProcess>>> LaunchQemu(QemuLaunch launch) override;
  Result<StartedVirtiofsd> LaunchVirtiofsd(VirtiofsdLaunch launch) override;
  boost::asio::awaitable<Result<std::unique_ptr<qmp::QmpClient>>> ConnectQmp(std::string socket_path,
                                                                             std::chrono::milliseconds timeout,
                                                                             std::string vm_id) override;
  boost::asio::awaitable<Result<GuestSocket>> ConnectGuest(GuestAddress address,
                                                           std::chrono::milliseconds timeout) override;

 private:
  boost::asio::any_io_executor executor_;
  OverlayCreator overlays_;
  std::shared_ptr<Jailer> jailer_;
};

}  // namespace agentvm
