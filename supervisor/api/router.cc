#include "supervisor/api/router.h"

#include <array>
#include <optional>
#include <vector>

#include "supervisor/api/encoding.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

// Longer than any valid request target: ids are 64 bytes, guest paths 4096
// (percent-encoded up to three times that), so this only stops junk early.
constexpr std::size_t kMaxTargetBytes = 16 * 1024;

struct MethodRoute {
  std::string_view method;
  Route route;
};

// Placeholders in a path shape; every other segment is literal.
constexpr std::string_view kId = "{id}";
constexpr std::string_view kName = "{name}";
constexpr std::size_t kMaxSegments = 5;  // after "v1"

// One path shape ("vms/{id}/exec", ...) and the routes it has by method.
struct PathRoutes {
  std::array<std::string_view, kMaxSegments> shape;  // unused tail: ""
  std::array<std::optional<MethodRoute>, 2> methods;

  std::size_t size() const {
    std::size_t n = 0;
    while (n < shape.size() && !shape[n].empty()) ++n;
    return n;
  }
};

constexpr PathRoutes kRoutes[] = {
    {{"vms"}, {{MethodRoute{"GET", Route::kListVms}, MethodRoute{"POST", Route::kCreateVm}}}},
    {{"pools"}, {{MethodRoute{"GET", Route::kListPools}, std::nullopt}}},
    {{"presets"}, {{MethodRoute{"GET", Route::kListPresets}, std::nullopt}}},
    {{"events"}, {{MethodRoute{"GET", Route::kEvents}, std::nullopt}}},
    {{"vms", kId}, {{MethodRoute{"GET", Route::kGetVm}, MethodRoute{"DELETE", Route::kDeleteVm}}}},
    {{"vms", kId, "stop"}, {{MethodRoute{"POST", Route::kStopVm}, std::nullopt}}},
    {{"vms", kId, "exec"}, {{MethodRoute{"POST", Route::kExec}, MethodRoute{"GET", Route::kExecInteractive}}}},
    {{"vms", kId, "files"}, {{MethodRoute{"GET", Route::kGetFile}, MethodRoute{"PUT", Route::kPutFile}}}},
    {{"vms", kId, "archive"}, {{MethodRoute{"GET", Route::kGetArchive}, MethodRoute{"PUT", Route::kPutArchive}}}},
    {{"vms", kId, "console"}, {{MethodRoute{"GET", Route::kConsole}, std::nullopt}}},
    {{"vms", kId, "release"}, {{MethodRoute{"POST", Route::kReleaseVm}, std::nullopt}}},
    {{"vms", kId, "network"}, {{MethodRoute{"PATCH", Route::kUpdateNetwork}, std::nullopt}}},
    {{"vms", kId, "egress"}, {{MethodRoute{"GET", Route::kEgressLog}, std::nullopt}}},
    {{"vms", kId, "snapshots"},
     {{MethodRoute{"GET", Route::kListSnapshots}, MethodRoute{"POST", Route::kSaveSnapshot}}}},
    {{"vms", kId, "snapshots", kName}, {{MethodRoute{"DELETE", Route::kDeleteSnapshot}, std::nullopt}}},
    {{"vms", kId, "snapshots", kName, "restore"},
     {{MethodRoute{"POST", Route::kRestoreSnapshot}, std::nullopt}}},
};

// True if `segments` agrees with `routes`' literals before position `upto`.
bool PrefixMatches(const PathRoutes& routes, const std::vector<std::string>& segments,
                   std::size_t upto) {
  for (std::size_t i = 0; i < upto; ++i) {
    std::string_view want = routes.shape[i];
    if (want != kId && want != kName && want != segments[i]) return false;
  }
  return true;
}

std::unexpected<RouteError> RouteFail(int status, Error error, std::string allow = {}) {
  return std::unexpected(RouteError{status, std::move(error), std::move(allow)});
}

std::expected<RouteMatch, RouteError> Pick(const PathRoutes& routes, std::string_view method,
                                           std::vector<std::string>& segments, QueryParams query) {
  std::string allow;
  for (const auto& candidate : routes.methods) {
    if (!candidate) continue;
    if (candidate->method == method) {
      RouteMatch match{candidate->route, {}, {}, std::move(query)};
      for (std::size_t i = 0; i < routes.size(); ++i) {
        if (routes.shape[i] == kId) match.vm_id = std::move(segments[i]);
        if (routes.shape[i] == kName) match.snapshot = std::move(segments[i]);
      }
      return match;
    }
    if (!allow.empty()) allow += ", ";
    allow += candidate->method;
  }
  return RouteFail(405,
                   Error{ErrorCode::kInvalidArgument, "method " + std::string(method) +
                                                          " not allowed here (allowed: " +
                                                          allow + ")"},
                   allow);
}

}  // namespace

std::string_view RouteName(Route route) {
  switch (route) {
    case Route::kCreateVm: return "create_vm";
    case Route::kListVms: return "list_vms";
    case Route::kGetVm: return "get_vm";
    case Route::kDeleteVm: return "delete_vm";
    case Route::kStopVm: return "stop_vm";
    case Route::kExec: return "exec";
    case Route::kExecInteractive: return "interactive exec";
    case Route::kPutFile: return "put_file";
    case Route::kGetFile: return "get_file";
    case Route::kPutArchive: return "put_archive";
    case Route::kGetArchive: return "get_archive";
    case Route::kConsole: return "console";
    case Route::kReleaseVm: return "release_vm";
    case Route::kListPools: return "list_pools";
    case Route::kListPresets: return "list_presets";
    case Route::kSaveSnapshot: return "save_snapshot";
    case Route::kListSnapshots: return "list_snapshots";
    case Route::kDeleteSnapshot: return "delete_snapshot";
    case Route::kRestoreSnapshot: return "restore_snapshot";
    case Route::kUpdateNetwork: return "update_network";
    case Route::kEgressLog: return "egress_log";
    case Route::kEvents: return "events";
    case Route::kMetrics: return "metrics";
  }
  return "unknown";
}

Result<QueryParams> ParseQuery(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2" is harmless
    auto eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq));
    auto value = PercentDecode(eq == std::string_view::npos ? std::string_view{}
                                                            : pair.substr(eq + 1));
    if (!key || !value) {
      return Fail(ErrorCode::kInvalidArgument, "malformed percent-escape in query string");
    }
    if (key->empty()) return Fail(ErrorCode::kInvalidArgument, "empty query parameter name");
    if (!params.emplace(std::move(*key), std::move(*value)).second) {
      return Fail(ErrorCode::kInvalidArgument, "query parameter given twice");
    }
  }
  return params;
}

std::expected<RouteMatch, RouteError> MatchRoute(std::string_view method,
                                                 std::string_view target) {
  if (target.size() > kMaxTargetBytes) {
    return RouteFail(400, Error{ErrorCode::kInvalidArgument, "request target too long"});
  }
  if (target.empty() || target.front() != '/') {
    return RouteFail(400, Error{ErrorCode::kInvalidArgument,
                                "request target must be an absolute path"});
  }
  auto question = target.find('?');
  std::string_view path = target.substr(0, question);
  auto query = ParseQuery(question == std::string_view::npos ? std::string_view{}
                                                             : target.substr(question + 1));
  if (!query) return RouteFail(400, query.error());

  std::vector<std::string> segments;
  std::string_view rest = path.substr(1);
  while (true) {
    auto slash = rest.find('/');
    auto decoded = PercentDecode(rest.substr(0, slash));
    if (!decoded) {
      return RouteFail(400, Error{ErrorCode::kInvalidArgument, "malformed percent-escape in path"});
    }
    segments.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (path == "/metrics") {
    if (method != "GET") {
      return RouteFail(405, Error{ErrorCode::kInvalidArgument, "method " + std::string(method) +
                                                                   " not allowed here (allowed: GET)"},
                       "GET");
    }
    return RouteMatch{Route::kMetrics, {}, {}, std::move(*query)};
  }
  auto not_found = [&] {
    return RouteFail(404, Error{ErrorCode::kNotFound, "no such endpoint: " + std::string(path)});
  };
  if (segments.front() != "v1") return not_found();
  segments.erase(segments.begin());  // the shapes in kRoutes start after it

  // Placeholders are checked left to right wherever some shape reaches them,
  // before the rest of the path, so that a hostile id ("/v1/vms/../../etc")
  // or snapshot name is told what is wrong with it, not a bare 404.
  for (std::size_t i = 0; i < segments.size() && i < kMaxSegments; ++i) {
    for (const auto& routes : kRoutes) {
      std::string_view placeholder = routes.shape[i];
      if ((placeholder != kId && placeholder != kName) || !PrefixMatches(routes, segments, i)) {
        continue;
      }
      auto valid = placeholder == kId ? ValidateVmId(segments[i]) : ValidateSnapshotName(segments[i]);
      if (!valid) return RouteFail(400, valid.error());
      break;
    }
  }

  for (const auto& routes : kRoutes) {
    if (routes.size() == segments.size() && PrefixMatches(routes, segments, segments.size())) {
      return Pick(routes, method, segments, std::move(*query));
    }
  }
  return not_found();
}

}  // namespace agentvm::api
