// Turns request bodies and query parameters into the typed requests of
// VmService, refusing anything malformed with kInvalidArgument and a message
// that names the field. Pure: the service is only called with what passed here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/error.h"
#include "protocol/exec_types.h"
#include "supervisor/api/network_validation.h"
#include "supervisor/api/router.h"
#include "supervisor/names.h"
#include "supervisor/network_update.h"
#include "supervisor/vm_types.h"

namespace agentvm::api {

inline constexpr std::size_t kMaxGuestPathBytes = 4096;
inline constexpr double kMaxExecTimeoutSec = 7 * 24 * 3600;
inline constexpr std::size_t kDefaultConsoleBytes = 1 << 20;
inline constexpr std::size_t kMaxConsoleBytes = 16 << 20;
// Deeper JSON than this is refused before it is parsed into a tree.
inline constexpr int kMaxJsonDepth = 32;

// Absolute, at most kMaxGuestPathBytes, no NUL, no ".." component. `what`
// names the field in the error ("path", "cwd").
Result<void> ValidateGuestPath(std::string_view path, std::string_view what);
// ^[A-Za-z_][A-Za-z0-9_]*$
Result<void> ValidateEnvName(std::string_view name);

// Parses a JSON object body, refusing malformed JSON, non-objects and nesting
// deeper than kMaxJsonDepth.
Result<nlohmann::json> ParseJsonObject(std::string_view body);

// An empty body means all defaults.
Result<CreateVmRequest> ParseCreateVmBody(std::string_view body);
Result<protocol::ExecRequest> ParseExecBody(std::string_view body);
// The interactive exec's query: request=<the same JSON, percent-encoded>.
Result<protocol::ExecRequest> ParseExecQuery(const QueryParams& query);
// PATCH /v1/vms/{id}/network: any of allow_tcp_ports, allow_cidrs,
// allow_domains, presets (each replacing the VM's list; [] empties it) and
// bandwidth_bytes_per_sec (null: no limit), checked as in a create's
// "network"; at least one of them.
Result<NetworkUpdate> ParseNetworkPatchBody(std::string_view body);
// {"name": "..."}: the name of the snapshot to save, required.
Result<std::string> ParseSaveSnapshotBody(std::string_view body);

Result<void> ExpectNoQuery(const QueryParams& query);
// ?force=true|false|1|0, default false.
Result<bool> ParseDeleteQuery(const QueryParams& query);

struct PutFileParams {
  std::string path;
  std::uint32_t mode = 0644;
};
// ?path=/abs[&mode=0644] (octal, at most 07777).
Result<PutFileParams> ParsePutFileQuery(const QueryParams& query);
// ?path=/abs
Result<std::string> ParseGetFileQuery(const QueryParams& query);
// [?max_bytes=N], 1..kMaxConsoleBytes, default kDefaultConsoleBytes.
Result<std::size_t> ParseConsoleQuery(const QueryParams& query);

// GET /v1/events: [?vm=ID][&type=T][&since=SEQ][&follow=true|false].
// At most this many types in one events query (more than there are).
inline constexpr std::size_t kMaxEventTypes = 32;

struct EventsQuery {
  std::string vm;    // empty: every VM
  std::vector<std::string> types;  // empty: every type
  // Replay the ring's events with a larger sequence number first. Without
  // it, a followed stream starts with the next event and one that is not
  // followed replays the whole ring.
  std::optional<std::uint64_t> since;
  bool follow = true;  // keep streaming new events until the client goes
};
Result<EventsQuery> ParseEventsQuery(const QueryParams& query);

// GET /v1/vms/{id}/egress: [?after=SEQ][&follow=true|false].
struct EgressQuery {
  std::uint64_t after = 0;  // the entries kept with a larger seq (0: all)
  bool follow = false;      // then every new entry until the VM's network goes
};
Result<EgressQuery> ParseEgressQuery(const QueryParams& query);

}  // namespace agentvm::api
