#include "bench/manual_vm.h"

#include <random>

#include <boost/asio/this_coro.hpp>

#include "bench/processes.h"
#include "supervisor/guest_connector.h"
#include "supervisor/qemu_command_line.h"
#include "supervisor/vm_host.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

Result<void> MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kInternal, "create " + dir.string() + ": " + ec.message());
  return {};
}

}  // namespace

std::string RandomVmId() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string id = "vm-";
  for (int i = 0; i < 12; ++i) id += kHex[random() % 16];
  return id;
}

ManualVm::ManualVm(ManualVmOptions options)
    : options_(std::move(options)),
      paths_(VmPaths::For((options_.root / "run").string(), (options_.root / "state").string(), options_.id)) {}

ManualVm::~ManualVm() {
  agent_.reset();
  if (qemu_) {
    const pid_t pid = qemu_->pid();
    qemu_.reset();  // SIGKILL and reap
    UntrackProcess(pid);
  }
  std::error_code ec;
  fs::remove_all(paths_.runtime_dir, ec);
  fs::remove_all(paths_.disk_dir, ec);
}

asio::awaitable<Result<std::unique_ptr<ManualVm>>> ManualVm::Boot(ManualVmOptions options, BootPhases* phases) {
  auto executor = co_await asio::this_coro::executor;
  std::unique_ptr<ManualVm> vm(new ManualVm(std::move(options)));
  const ManualVmOptions& o = vm->options_;
  const VmPaths& paths = vm->paths_;
  BootPhases local;
  if (!phases) phases = &local;

  // Step for step what Vm::BootSteps does, minus QMP and the state store.
  auto start = Clock::now();
  if (auto made = MakeDir(paths.runtime_dir); !made) co_return Fail(made.error());
  if (auto made = MakeDir(paths.disk_dir); !made) co_return Fail(made.error());
  const std::string base = fs::absolute(o.image.rootfs).string();
  std::vector<std::string> create_overlay = {o.qemu_img_binary, "create", "-q", "-f", "qcow2", "-F", "qcow2",
                                             "-b", base, paths.overlay().string()};
  auto overlay = co_await RunToCompletion(executor, std::move(create_overlay),
                                          (paths.runtime_dir / "qemu-img.log").string());
  if (!overlay) co_return Fail(overlay.error().Wrap("create overlay"));
  auto mark = Clock::now();
  phases->overlay = mark - start;

  QemuLaunchSpec launch{
      .qemu_binary = o.qemu_binary,
      .vm_id = o.id,
      .accel = Accel::kTcg,
      .cpus = o.cpus,
      .memory_mib = o.memory_mib,
      .kernel = o.image.kernel.string(),
      .initrd = o.image.initrd.string(),
      .kernel_args = o.image.kernel_args + " agentvm.channel=serial agentvm.hostname=" + o.id,
      .base_image = base,
      .overlay = paths.overlay().string(),
      .console_log = paths.console_log().string(),
      .pidfile = paths.pidfile().string(),
      .channel = ChannelKind::kVirtioSerial,
  };
  // QMP goes unused here, but QEMU serves it like agentvmd's VMs do.
  auto listeners = ListenForQemu(paths, launch);
  if (!listeners) co_return Fail(listeners.error());
  std::vector<std::string> argv = QemuCommandLine(launch);
  if (o.with_qga) {
    argv.insert(argv.end(), {
        "-chardev", "socket,id=qga0,path=" + QemuOptEscape(vm->qga_socket()) + ",server=on,wait=off",
        "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
    });
  }
  if (o.with_raw_port) {
    argv.insert(argv.end(), {
        "-chardev", "socket,id=raw0,path=" + QemuOptEscape(vm->raw_socket()) + ",server=on,wait=off",
        "-device", std::string("virtserialport,bus=vser0.0,chardev=raw0,name=") + kRawPortName,
    });
  }
  auto launched = ChildProcess::Launch(
      executor, LaunchSpec{.argv = argv, .stderr_path = paths.qemu_log().string(), .pass_fds = {launch.qmp_fd, launch.agent_fd}});
  if (!launched) co_return Fail(launched.error().Wrap("launch qemu"));
  vm->qemu_ = std::move(*launched);
  TrackProcess(vm->qemu_->pid(), ProcessKind::kQemu);

  auto socket = co_await ConnectGuestUnix(paths.agent_socket().string(), o.agent_timeout);
  if (!socket) co_return Fail(socket.error().Wrap("connect to guest agent"));
  vm->agent_ = std::make_unique<GuestChannel>(std::move(*socket), o.id);
  vm->agent_->Start();
  start = Clock::now();
  phases->connect = start - mark;

  auto ready = co_await vm->agent_->WaitReady(o.agent_timeout);
  if (!ready) co_return Fail(ready.error().Wrap("wait for the guest agent"));
  phases->ready = Clock::now() - start;
  co_return vm;
}

}  // namespace agentvm::bench
