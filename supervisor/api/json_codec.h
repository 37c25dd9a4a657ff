// The API's wire format, shared by the server (encode) and the agentvm CLI
// (decode): VmInfo, PoolInfo, SnapshotInfo, error bodies, request bodies and
// the NDJSON exec events.
// Pure; the field names here are the ones docs/api.md documents.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "netsetup/egress_presets.h"
#include "protocol/exec_types.h"
#include "supervisor/vm_types.h"

namespace agentvm::api {

// "creating", "starting", "running", "stopping", "stopped", "failed".
Result<VmState> ParseVmState(std::string_view name);

// Encoders build ordered_json so fields appear in the documented order.
nlohmann::ordered_json VmInfoToJson(const VmInfo& info);
// A VM's "network" object; also the daemon's state-store record of it.
nlohmann::ordered_json NetworkInfoToJson(const NetworkInfo& network);
Result<NetworkInfo> NetworkInfoFromJson(const nlohmann::json& value);
Result<VmInfo> VmInfoFromJson(const nlohmann::json& value);
// {"vms": [...]}
nlohmann::ordered_json VmListToJson(const std::vector<VmInfo>& vms);
Result<std::vector<VmInfo>> VmListFromJson(const nlohmann::json& value);

nlohmann::ordered_json SnapshotInfoToJson(const SnapshotInfo& info);
Result<SnapshotInfo> SnapshotInfoFromJson(const nlohmann::json& value);
// {"snapshots": [...]}
nlohmann::ordered_json SnapshotListToJson(const std::vector<SnapshotInfo>& snapshots);
Result<std::vector<SnapshotInfo>> SnapshotListFromJson(const nlohmann::json& value);

nlohmann::ordered_json PoolInfoToJson(const PoolInfo& info);
Result<PoolInfo> PoolInfoFromJson(const nlohmann::json& value);
// {"pools": [...]}
nlohmann::ordered_json PoolListToJson(const std::vector<PoolInfo>& pools);
Result<std::vector<PoolInfo>> PoolListFromJson(const nlohmann::json& value);

// {"presets": [{"name", "source", "domains"}...]} (GET /v1/presets).
nlohmann::ordered_json PresetListToJson(const std::vector<net::EgressPreset>& presets);
Result<std::vector<net::EgressPreset>> PresetListFromJson(const nlohmann::json& value);

// Request bodies as the CLI sends them (the server parses them with
// request_validation.h).
std::string CreateVmRequestToJson(const CreateVmRequest& request);
std::string ExecRequestToJson(const protocol::ExecRequest& request);

// The one conversion each way at the API's edge for an exec timeout: the
// JSON carries "timeout_sec", seconds with fractions; C++ holds
// milliseconds, rounded up so a timeout is never shorter than asked.
std::chrono::milliseconds TimeoutFromSeconds(double seconds);
double TimeoutToSeconds(std::chrono::milliseconds timeout);
std::string SaveSnapshotRequestToJson(const std::string& name);

// Serializes without ever throwing: invalid UTF-8 in strings is replaced.
std::string DumpJson(const nlohmann::json& value, int indent = -1);
std::string DumpJson(const nlohmann::ordered_json& value, int indent = -1);

// 400 invalid_argument, 404 not_found, 409 conflict, 504 timeout,
// 503 unavailable, 413 too_large, 500 internal.
int HttpStatusFor(ErrorCode code);
// {"error": "<message>", "code": "<ErrorCodeName>"}
std::string ErrorBody(const Error& error);
// The inverse, for clients; falls back to the HTTP status when the body is
// not an error object.
Error ErrorFromResponse(int http_status, std::string_view body);

// Exec output events: one JSON object per line, each ending in '\n'.
// Output that is valid UTF-8 travels as "data", anything else as "data_b64",
// so the bytes arrive intact either way.
std::string ExecOutputEvent(protocol::OutputStream stream, std::string_view bytes);
std::string ExecExitEvent(const protocol::ExecResult& result);
std::string ExecErrorEvent(const Error& error);

struct ExecEvent {
  enum class Type { kStdout, kStderr, kExit, kError };
  Type type = Type::kError;
  std::string data;              // kStdout/kStderr: the raw bytes
  protocol::ExecResult result;   // kExit
  Error error;                   // kError
};
Result<ExecEvent> ParseExecEvent(std::string_view line);

}  // namespace agentvm::api
