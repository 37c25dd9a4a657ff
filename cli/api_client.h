// ApiClient: agentvmd's API as blocking calls, one connection per call, for
// the agentvm CLI. Beast stays in api_client.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "netsetup/egress_log.h"
#include "netsetup/egress_presets.h"
#include "protocol/exec_types.h"
#include "supervisor/network_update.h"
#include "supervisor/vm_types.h"

namespace agentvm::cli {

// Receives exec output as it arrives; returning false stops the exec stream
// (the connection is closed; the command goes on in the VM).
using ExecOutput = std::function<bool(protocol::OutputStream, std::string_view)>;

class ApiClient {
 public:
  explicit ApiClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  // While an exec streams, the fd of its connection is stored here (-1 when
  // idle), so a signal handler can shutdown(2) it to interrupt the blocking
  // read. A handler that finds no fd leaves -2, and the next exec connection
  // is then shut down as soon as it is made.
  void set_active_fd_slot(std::atomic<int>* slot) { active_fd_ = slot; }

  Result<VmInfo> CreateVm(const CreateVmRequest& request);
  Result<std::vector<VmInfo>> ListVms();
  Result<std::string> ListVmsJson();  // agentvmd's JSON, as sent
  Result<VmInfo> GetVm(const std::string& id);
  Result<std::string> GetVmJson(const std::string& id);
  // PATCH /v1/vms/{id}/network: the fields `update` gives replace the VM's.
  Result<VmInfo> UpdateNetwork(const std::string& id, const NetworkUpdate& update);
  Result<VmInfo> StopVm(const std::string& id);
  Result<void> DestroyVm(const std::string& id, bool force);
  Result<protocol::ExecResult> Exec(const std::string& id, const protocol::ExecRequest& request,
                                    const ExecOutput& output);
  // Starts a command that runs on by itself (request.detach); returns once
  // agentvmd has started it.
  Result<void> ExecDetached(const std::string& id, const protocol::ExecRequest& request);
  Result<void> WriteFile(const std::string& id, const std::string& path, std::string data,
                         std::uint32_t mode);
  Result<std::string> ReadFile(const std::string& id, const std::string& path);

  // Streamed transfers: nothing is held whole, on either side.
  // A sink takes the bytes as they come; an error stops the transfer.
  using BodySink = std::function<Result<void>(std::string_view bytes)>;
  // Makes a request body, handing it piece by piece to the sink it is given.
  using BodyProducer = std::function<Result<void>(const BodySink& send)>;
  Result<void> UploadFile(const std::string& id, const std::string& path, std::uint32_t mode,
                          const BodyProducer& body);
  Result<void> DownloadFile(const std::string& id, const std::string& path, const BodySink& sink);
  // A tar stream extracted into (or made from) the directory `dir` in the VM.
  Result<void> UploadTree(const std::string& id, const std::string& dir, const BodyProducer& body);
  Result<void> DownloadTree(const std::string& id, const std::string& dir, const BodySink& sink);
  // GET /v1/events with `query`: the NDJSON body to `sink` as it streams
  // (a followed stream ends when the daemon ends it or the sink fails).
  Result<void> StreamEvents(const std::map<std::string, std::string>& query, const BodySink& sink);
  Result<std::string> Console(const std::string& id);
  Result<void> ReleaseVm(const std::string& id);
  Result<std::vector<PoolInfo>> ListPools();
  Result<std::string> ListPoolsJson();  // agentvmd's JSON, as sent
  Result<std::vector<net::EgressPreset>> ListPresets();
  Result<std::string> ListPresetsJson();  // agentvmd's JSON, as sent
  // GET /v1/vms/{id}/egress?after=SEQ: the entries kept after SEQ.
  Result<std::vector<net::EgressEntry>> EgressLog(const std::string& id, std::uint64_t after);
  // GET /v1/vms/{id}/egress?follow=true: the NDJSON lines of the kept
  // entries, then of each new one as it comes, until agentvmd ends the
  // stream (the VM's network went: stopped or removed).
  Result<void> FollowEgressLog(const std::string& id, const BodySink& sink);
  Result<SnapshotInfo> SaveSnapshot(const std::string& id, const std::string& name);
  Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& id);
  Result<std::string> ListSnapshotsJson(const std::string& id);
  Result<void> RestoreSnapshot(const std::string& id, const std::string& name);
  Result<void> DeleteSnapshot(const std::string& id, const std::string& name);

  const std::string& socket_path() const { return socket_path_; }

  struct Reply {
    int status = 0;
    std::string body;
  };

 private:
  // One request on a fresh connection; transport failures become errors,
  // HTTP error statuses do not (callers map them).
  Result<Reply> Call(std::string_view method, const std::string& target, std::string body,
                     std::string_view content_type);
  // Call, then turn any status other than `expected` into the server's error.
  Result<std::string> Expect(int expected, std::string_view method, const std::string& target,
                             std::string body = {}, std::string_view content_type = {});
  // Call for a request answered without a body: 204 (or 200) is success.
  Result<void> ExpectNoContent(std::string_view method, const std::string& target,
                               std::string body = {}, std::string_view content_type = {});

  Result<void> PutStreamed(const std::string& target, std::string_view content_type, const BodyProducer& body);
  Result<void> GetStreamed(const std::string& target, const BodySink& sink);

  std::string socket_path_;
  std::atomic<int>* active_fd_ = nullptr;
};

}  // namespace agentvm::cli
