// Supervisor: the VmService of the daemon. It owns every Vm (by id), the state
// store, and the choices fixed at start-up (accelerator, control channel).
// Everything runs on the daemon's single io_context thread: that thread is
// the "strand" that owns all VM state, so nothing here takes a lock.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "supervisor/config.h"
#include "supervisor/host_facts.h"
#include "supervisor/image_store.h"
#include "supervisor/state_store.h"
#include "supervisor/vm.h"
#include "supervisor/vm_network.h"
#include "supervisor/vm_service.h"

namespace agentvm {

class Supervisor : public VmService {
 public:
  static Result<std::unique_ptr<Supervisor>> Create(boost::asio::any_io_executor executor,
                                                    const DaemonConfig& config, const HostFacts& host);

  // Takes over what an earlier daemon left in the state store: a QEMU still
  // running for a recorded VM is killed (it cannot be adopted yet), and the
  // VM stays listed as failed so `rm` can remove its files and lease. The
  // bridge and nftables tables it made are removed.
  Result<void> Recover();

  // Stops every VM (gracefully, bounded by stop_grace) before the daemon
  // exits, then takes down the network it built.
  boost::asio::awaitable<void> Shutdown();

  boost::asio::awaitable<Result<VmInfo>> Create(CreateVmRequest request) override;
  Result<std::vector<VmInfo>> List() override;
  Result<VmInfo> Get(const std::string& id) override;
  boost::asio::awaitable<Result<VmInfo>> Stop(const std::string& id) override;
  boost::asio::awaitable<Result<void>> Destroy(const std::string& id, bool force) override;
  boost::asio::awaitable<Result<protocol::ExecResult>> Exec(const std::string& id, protocol::ExecRequest request,
                                                            protocol::OutputSink sink) override;
  boost::asio::awaitable<Result<void>> WriteFile(const std::string& id, const std::string& path,
                                                 std::string data, std::uint32_t mode) override;
  boost::asio::awaitable<Result<std::string>> ReadFile(const std::string& id, const std::string& path) override;
  Result<std::string> Console(const std::string& id, std::size_t max_bytes) override;

 private:
  Supervisor(boost::asio::any_io_executor executor, DaemonConfig config, Accel accel, ChannelKind channel,
             std::unique_ptr<StateStore> store);

  Result<std::shared_ptr<Vm>> Find(const std::string& id);
  VmInfo InfoOf(const Vm& vm) const;
  VmContext MakeContext();
  std::string NewVmId() const;
  std::uint32_t NewGuestCid() const;

  boost::asio::any_io_executor executor_;
  DaemonConfig config_;
  Accel accel_;
  ChannelKind channel_;
  ImageStore images_;
  std::unique_ptr<StateStore> store_;
  std::shared_ptr<VmNetwork> network_;
  std::map<std::string, std::shared_ptr<Vm>> vms_;
};

}  // namespace agentvm
