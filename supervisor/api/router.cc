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

// The routes of one path shape ("vms/{id}", "vms/{id}/exec", ...).
struct PathRoutes {
  std::string_view action;  // segment after the id; "" for none
  std::array<std::optional<MethodRoute>, 2> methods;
};

constexpr PathRoutes kVmRoutes[] = {
    {"", {{MethodRoute{"GET", Route::kGetVm}, MethodRoute{"DELETE", Route::kDeleteVm}}}},
    {"stop", {{MethodRoute{"POST", Route::kStopVm}, std::nullopt}}},
    {"exec", {{MethodRoute{"POST", Route::kExec}, std::nullopt}}},
    {"files", {{MethodRoute{"GET", Route::kGetFile}, MethodRoute{"PUT", Route::kPutFile}}}},
    {"console", {{MethodRoute{"GET", Route::kConsole}, std::nullopt}}},
};

constexpr PathRoutes kCollectionRoutes = {
    "", {{MethodRoute{"GET", Route::kListVms}, MethodRoute{"POST", Route::kCreateVm}}}};

std::unexpected<RouteError> RouteFail(int status, Error error, std::string allow = {}) {
  return std::unexpected(RouteError{status, std::move(error), std::move(allow)});
}

std::expected<RouteMatch, RouteError> Pick(const PathRoutes& routes, std::string_view method,
                                           std::string vm_id, QueryParams query) {
  std::string allow;
  for (const auto& candidate : routes.methods) {
    if (!candidate) continue;
    if (candidate->method == method) {
      return RouteMatch{candidate->route, std::move(vm_id), std::move(query)};
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
    case Route::kPutFile: return "put_file";
    case Route::kGetFile: return "get_file";
    case Route::kConsole: return "console";
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

  auto not_found = [&] {
    return RouteFail(404, Error{ErrorCode::kNotFound, "no such endpoint: " + std::string(path)});
  };
  if (segments.size() < 2 || segments[0] != "v1" || segments[1] != "vms") return not_found();
  if (segments.size() == 2) return Pick(kCollectionRoutes, method, {}, std::move(*query));

  // The id is checked before the rest of the path so that a hostile id
  // ("/v1/vms/../../etc") is told what is wrong with it, not a bare 404.
  if (auto id = ValidateVmId(segments[2]); !id) return RouteFail(400, id.error());
  if (segments.size() > 4) return not_found();

  std::string_view action = segments.size() == 4 ? std::string_view(segments[3]) : "";
  if (segments.size() == 4 && action.empty()) return not_found();
  for (const auto& routes : kVmRoutes) {
    if (routes.action == action) return Pick(routes, method, segments[2], std::move(*query));
  }
  return not_found();
}

}  // namespace agentvm::api
