// VmService: everything the API layer may ask of the supervisor, as typed
// requests. The API parses HTTP into these calls and never touches VM state
// itself (the Firecracker split); tests give the API a fake VmService.
//
// All methods run on the daemon's single io_context thread.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>  // before asio: Boost 1.74 awaitable.hpp needs std::exchange
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "netsetup/egress_log.h"
#include "netsetup/egress_presets.h"
#include "protocol/exec_types.h"
#include "protocol/messages.h"
#include "supervisor/exec_stream.h"
#include "supervisor/network_update.h"
#include "supervisor/vm_types.h"

namespace agentvm {

class EventLog;

class VmService {
 public:
  virtual ~VmService() = default;

  // Boots a VM and completes once its agent answers (state running) or the
  // boot failed (the error says why; the VM is left in state failed).
  virtual boost::asio::awaitable<Result<VmInfo>> Create(CreateVmRequest request) = 0;
  virtual Result<std::vector<VmInfo>> List() = 0;
  virtual Result<VmInfo> Get(const std::string& id) = 0;
  // Graceful stop: agent poweroff, then ACPI, then kill after a grace period.
  virtual boost::asio::awaitable<Result<VmInfo>> Stop(const std::string& id) = 0;
  // Removes the VM, its overlay and runtime directory. A running VM is
  // refused (kConflict) unless `force`, which kills it first.
  virtual boost::asio::awaitable<Result<void>> Destroy(const std::string& id, bool force) = 0;
  // Starts a command; its output, stdin and end come through the stream
  // (flow controlled: a consumer that reads slowly slows the command down).
  virtual boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> StartExec(
      const std::string& id, protocol::ExecRequest request) = 0;
  // Files go in and out a piece at a time, so no file is ever held whole.
  // A piece of an upload: `data` at `offset`; `truncate` (the first piece)
  // creates or empties the file and gives it `mode`.
  virtual boost::asio::awaitable<Result<void>> WriteFileChunk(const std::string& id, const std::string& path,
                                                              std::string data, std::uint64_t offset,
                                                              bool truncate, std::uint32_t mode) = 0;
  // At most protocol::kFileChunkBytes of the file from `offset`, with its
  // size, mode and whether more follows.
  virtual boost::asio::awaitable<Result<protocol::FileChunk>> ReadFileChunk(const std::string& id,
                                                                            const std::string& path,
                                                                            std::uint64_t offset) = 0;
  // The guest's serial console so far (boot log), at most the last `max_bytes`.
  virtual Result<std::string> Console(const std::string& id, std::size_t max_bytes) = 0;

  // Hands a VM back: it is killed, its overlay discarded, and the pool it
  // came from (if any) restores a fresh clone in its place. Any state.
  virtual boost::asio::awaitable<Result<void>> Release(const std::string& id) = 0;
  virtual Result<std::vector<PoolInfo>> Pools() = 0;
  // The egress presets a create may name in network.presets: the built-in
  // ones and the operator's (netsetup/egress_presets.h).
  virtual Result<std::vector<net::EgressPreset>> Presets() = 0;
  // A VM's egress log as kept in memory (the last kEgressRingEntries), the
  // entries with seq > `after`, oldest first; empty while its network is not
  // attached (stopped) or for a VM that is not nat-filtered.
  virtual Result<std::vector<net::EgressEntry>> EgressLog(const std::string& id, std::uint64_t after) = 0;
  // Every entry of that log from now on, until the VM's network goes (stop,
  // removal: the follower is closed); null when there is no live log. Taken
  // with EgressLog (no co_await between), nothing is missed or seen twice.
  virtual Result<std::shared_ptr<net::EgressFollower>> FollowEgressLog(const std::string& id,
                                                                       boost::asio::any_io_executor executor) = 0;

  // Changes a running nat-filtered VM's egress policy (allow_tcp_ports,
  // allow_cidrs, allow_domains, bandwidth): the fields given replace the
  // VM's, checked like a create's, applied in one firewall batch and
  // recorded. Connections already open stay open.
  virtual Result<VmInfo> UpdateNetwork(const std::string& id, const NetworkUpdate& update) = 0;

  // Named snapshots of a running VM (memory, devices and disk), kept in its
  // overlay: they go when the VM is removed or released. Saving an existing
  // name is kConflict; an unknown name is kNotFound. Restoring brings the
  // guest back to that moment, memory and disk, and resets its clock.
  virtual boost::asio::awaitable<Result<SnapshotInfo>> SaveSnapshot(const std::string& id,
                                                                    const std::string& name) = 0;
  virtual boost::asio::awaitable<Result<std::vector<SnapshotInfo>>> ListSnapshots(const std::string& id) = 0;
  virtual boost::asio::awaitable<Result<void>> RestoreSnapshot(const std::string& id, const std::string& name) = 0;
  virtual boost::asio::awaitable<Result<void>> DeleteSnapshot(const std::string& id, const std::string& name) = 0;

  // What happened to the VMs, for GET /v1/events (event_log.h).
  virtual EventLog& Events() = 0;
  // Every metric in Prometheus' text exposition format, for GET /metrics.
  // What QEMU must be asked (block I/O) is bounded in time: a hung VM
  // leaves its series out, it never holds the scrape.
  virtual boost::asio::awaitable<Result<std::string>> MetricsText() = 0;
};

}  // namespace agentvm
