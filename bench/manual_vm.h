// ManualVm: the daemon's QEMU command run by hand, without agentvmd: the same
// qemu-img overlay, the same QemuCommandLine argv (plus, on request, a port for
// QEMU's own guest agent), then our agent's socket and ping until the first
// pong. The baseline agentvmd's create is measured against, and the VM the
// exec benchmarks drive directly.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include "bench/stats.h"
#include "common/error.h"
#include "supervisor/child_process.h"
#include "supervisor/guest_channel.h"
#include "supervisor/image_store.h"
#include "supervisor/vm_paths.h"

namespace agentvm::bench {

struct ManualVmOptions {
  Image image;
  std::filesystem::path root;  // run/ and state/ are made under it, as agentvmd's
  std::string id;              // same shape as agentvmd's: vm-<12 hex>
  int cpus = 1;
  int memory_mib = 256;
  bool with_qga = false;       // add an org.qemu.guest_agent.0 port
  // Add a virtio-serial port named kRawPortName whose host end is
  // raw_socket(): the bare channel, with no protocol of ours on it.
  bool with_raw_port = false;
  std::string qemu_binary = "qemu-system-x86_64";
  std::string qemu_img_binary = "qemu-img";
  std::chrono::milliseconds agent_timeout{90000};
};

// Where a boot's time went, each phase measured from the end of the last.
struct BootPhases {
  Clock::duration overlay{};  // qemu-img create
  Clock::duration connect{};  // launch QEMU until the agent socket accepts
  Clock::duration ready{};    // ping until the first pong
  Clock::duration total() const { return overlay + connect + ready; }
};

class ManualVm {
 public:
  // Boots to "agent answered". On failure nothing is left running.
  static boost::asio::awaitable<Result<std::unique_ptr<ManualVm>>> Boot(ManualVmOptions options,
                                                                        BootPhases* phases = nullptr);
  // Kills and reaps QEMU, removes the VM's directories.
  ~ManualVm();
  ManualVm(const ManualVm&) = delete;
  ManualVm& operator=(const ManualVm&) = delete;

  GuestChannel& agent() { return *agent_; }
  std::string qga_socket() const { return (paths_.runtime_dir / "qga.sock").string(); }
  std::string raw_socket() const { return (paths_.runtime_dir / "raw.sock").string(); }
  const std::string& id() const { return options_.id; }

 private:
  explicit ManualVm(ManualVmOptions options);

  ManualVmOptions options_;
  VmPaths paths_;
  std::unique_ptr<ChildProcess> qemu_;
  std::unique_ptr<GuestChannel> agent_;
};

inline constexpr char kRawPortName[] = "agentvm.bench.raw";

// "vm-" and 12 random hex digits, like agentvmd's ids.
std::string RandomVmId();

}  // namespace agentvm::bench
