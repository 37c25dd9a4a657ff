#include "supervisor/vm_host.h"

#include "protocol/frame.h"
#include "qmp/qmp_client.h"
#include "supervisor/jail.h"
#include "supervisor/unix_listener.h"

namespace agentvm {
namespace {

// QEMU as a ChildProcess: killed and reaped when dropped while running.
class ChildQemuProcess final : public QemuProcess {
 public:
  explicit ChildQemuProcess(std::unique_ptr<ChildProcess> child) : child_(std::move(child)) {}

  pid_t pid() const override { return child_->pid(); }
  const std::optional<ExitStatus>& exit_status() const override { return child_->exit_status(); }
  boost::asio::awaitable<ExitStatus> WaitExit() override { return child_->WaitExit(); }
  void Kill(int signal) override { child_->Kill(signal); }

 private:
  std::unique_ptr<ChildProcess> child_;
};

}  // namespace

QemuLaunch QemuLaunchFor(const QemuLaunchSpec& spec, const VmPaths& paths) {
  QemuLaunch launch{
      .vm_id = spec.vm_id,
      .argv = QemuCommandLine(spec),
      .stderr_path = paths.qemu_log().string(),
      .read_only_paths = {spec.kernel, spec.initrd, spec.base_image},
      .writable_paths = {paths.runtime_dir.string(), spec.overlay},
      // rng-random reads /dev/urandom (qemu_command_line.cc).
      .devices = {"/dev/urandom"},
      .memory_mib = spec.memory_mib,
      .accel = spec.accel,
  };
  if (spec.accel == Accel::kKvm) launch.devices.push_back("/dev/kvm");
  if (spec.channel == ChannelKind::kVsock) launch.devices.push_back("/dev/vhost-vsock");
  if (spec.tap_fd >= 0) launch.pass_fds.push_back(spec.tap_fd);
  if (spec.console_fd >= 0) launch.pass_fds.push_back(spec.console_fd);
  if (spec.qmp_fd >= 0) launch.pass_fds.push_back(spec.qmp_fd);
  if (spec.agent_fd >= 0) launch.pass_fds.push_back(spec.agent_fd);
  for (const auto& device : spec.fs_devices) launch.pass_fds.push_back(device.fd);
  if (spec.memory_fd >= 0) {
    launch.pass_fds.push_back(spec.memory_fd);
    launch.opens_fds_by_path = true;
  }
  if (!spec.frozen_image.empty()) launch.read_only_paths.push_back(spec.frozen_image);
  return launch;
}

Result<QemuListeners> ListenForQemu(const VmPaths& paths, QemuLaunchSpec& spec) {
  QemuListeners listeners;
  auto qmp = ListenUnix(paths.qmp_socket().string(), 1);
  if (!qmp) return Fail(qmp.error().Wrap("QMP socket"));
  listeners.qmp = std::move(*qmp);
  spec.qmp_fd = listeners.qmp.get();
  if (spec.channel == ChannelKind::kVirtioSerial) {
    auto agent = ListenUnix(paths.agent_socket().string(), 1);
    if (!agent) return Fail(agent.error().Wrap("agent socket"));
    listeners.agent = std::move(*agent);
    spec.agent_fd = listeners.agent.get();
  }
  return listeners;
}

RealVmHost::RealVmHost(boost::asio::any_io_executor executor, std::string qemu_img_binary,
                       std::shared_ptr<Jailer> jailer)
    : executor_(executor), overlays_(executor, std::move(qemu_img_binary)), jailer_(std::move(jailer)) {}

boost::asio::awaitable<Result<void>> RealVmHost::CreateOverlay(std::string backing, std::uint64_t size_bytes,
                                                               std::string overlay, std::string log_path) {
  co_return co_await overlays_.Create(std::move(backing), size_bytes, std::move(overlay), std::move(log_path));
}

boost::asio::awaitable<Result<std::unique_ptr<QemuProcess>>> RealVmHost::LaunchQemu(QemuLaunch launch) {
  if (jailer_) {
    auto jailed = jailer_->Launch(executor_, std::move(launch));
    co_return std::move(jailed);
  }
  LaunchSpec spec{.argv = std::move(launch.argv),
                  .stderr_path = std::move(launch.stderr_path),
                  .pass_fds = std::move(launch.pass_fds)};
  auto child = ChildProcess::Launch(executor_, spec);
  if (!child) co_return Fail(child.error());
  std::unique_ptr<QemuProcess> process = std::make_unique<ChildQemuProcess>(std::move(*child));
  co_return std::move(process);
}

Result<StartedVirtiofsd> RealVmHost::LaunchVirtiofsd(VirtiofsdLaunch launch) {
  if (jailer_) return jailer_->LaunchVirtiofsd(executor_, launch);
  return agentvm::LaunchVirtiofsd(executor_, launch, std::nullopt);
}

boost::asio::awaitable<Result<std::unique_ptr<qmp::QmpClient>>> RealVmHost::ConnectQmp(
    std::string socket_path, std::chrono::milliseconds timeout, std::string vm_id) {
  auto client = co_await qmp::QmpClient::Connect(executor_, std::move(socket_path), timeout, std::move(vm_id));
  if (!client) co_return Fail(client.error().ToError());
  co_return std::move(*client);
}

boost::asio::awaitable<Result<GuestSocket>> RealVmHost::ConnectGuest(GuestAddress address,
                                                                     std::chrono::milliseconds timeout) {
  // Not a ?: of two co_awaits: g++ 12 evaluates neither branch correctly.
  Result<GuestSocket> socket = Fail(ErrorCode::kInternal, "no control channel");
  if (address.channel == ChannelKind::kVsock) {
    socket = co_await ConnectGuestVsock(address.cid, protocol::kGuestVsockPort, timeout);
  } else {
    socket = co_await ConnectGuestUnix(std::move(address.unix_socket), timeout);
  }
  co_return std::move(socket);
}

}  // namespace agentvm
