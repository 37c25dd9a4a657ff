// Maps an HTTP method and request target to one of the API's routes, with the
// VM id, the snapshot name and the (percent-decoded) query parameters. Pure:
// no I/O, no service.
//
// Every path segment is percent-decoded separately, after splitting on '/', so
// "%2F" can never change the shape of a path, and the id and snapshot-name
// segments are validated after decoding ("%2e%2e" is "..", which is refused
// like "..").
#pragma once

#include <expected>
#include <map>
#include <string>
#include <string_view>

#include "common/error.h"
#include "supervisor/vm_types.h"

namespace agentvm::api {

enum class Route {
  kCreateVm,   // POST   /v1/vms
  kListVms,    // GET    /v1/vms
  kGetVm,      // GET    /v1/vms/{id}
  kDeleteVm,   // DELETE /v1/vms/{id}
  kStopVm,     // POST   /v1/vms/{id}/stop
  kExec,       // POST   /v1/vms/{id}/exec
  kExecInteractive,  // GET  /v1/vms/{id}/exec?request=  (WebSocket upgrade)
  kPutFile,    // PUT    /v1/vms/{id}/files?path=
  kGetFile,    // GET    /v1/vms/{id}/files?path=
  kPutArchive,  // PUT   /v1/vms/{id}/archive?path=  (a tar stream in)
  kGetArchive,  // GET   /v1/vms/{id}/archive?path=  (a tar stream out)
  kConsole,    // GET    /v1/vms/{id}/console
  kReleaseVm,  // POST   /v1/vms/{id}/release
  kListPools,  // GET    /v1/pools
  kListPresets,  // GET  /v1/presets
  kSaveSnapshot,     // POST   /v1/vms/{id}/snapshots
  kListSnapshots,    // GET    /v1/vms/{id}/snapshots
  kDeleteSnapshot,   // DELETE /v1/vms/{id}/snapshots/{name}
  kRestoreSnapshot,  // POST   /v1/vms/{id}/snapshots/{name}/restore
  kUpdateNetwork,    // PATCH  /v1/vms/{id}/network
  kEgressLog,        // GET    /v1/vms/{id}/egress?after=&follow=  (NDJSON stream)
  kEvents,           // GET    /v1/events?vm=&type=&since=&follow=  (NDJSON stream)
  kMetrics,          // GET    /metrics  (Prometheus text format; outside /v1, where scrapers look)
};

std::string_view RouteName(Route route);

using QueryParams = std::map<std::string, std::string>;

struct RouteMatch {
  Route route;
  std::string vm_id;     // empty for the collection routes
  std::string snapshot;  // the {name} of the snapshot routes, else empty
  QueryParams query;
  // Who asked: the connection's SO_PEERCRED, filled in by the connection
  // (MatchRoute knows only the request line); none when unknown.
  std::optional<UserIds> caller;
};

struct RouteError {
  int http_status;  // 400, 404 or 405
  Error error;
  std::string allow;  // for 405: the methods the path does accept
};

std::expected<RouteMatch, RouteError> MatchRoute(std::string_view method,
                                                 std::string_view target);

// Splits and percent-decodes "a=1&b=x%20y". Duplicate keys, empty keys and bad
// escapes are errors.
Result<QueryParams> ParseQuery(std::string_view query);

}  // namespace agentvm::api
