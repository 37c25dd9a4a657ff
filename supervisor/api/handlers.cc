#include "supervisor/api/handlers.h"

#include <exception>

#include "common/logging.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

HttpResponse NoContent() { return HttpResponse{204, {}, {}, {}}; }

}  // namespace

HttpResponse JsonResponse(int status, const nlohmann::ordered_json& body) {
  return HttpResponse{status, "application/json", DumpJson(body) + "\n", {}};
}

HttpResponse ErrorResponse(int status, const Error& error) {
  return HttpResponse{status, "application/json", ErrorBody(error) + "\n", {}};
}

HttpResponse ErrorResponse(const Error& error) {
  return ErrorResponse(HttpStatusFor(error.code), error);
}

awaitable<void> ApiHandlers::Handle(const RouteMatch& match, std::string body,
                                    Responder& responder) {
  if (match.route == Route::kExec) {
    co_await HandleExec(match, std::move(body), responder);
    co_return;
  }
  if (match.route == Route::kGetFile) {
    co_await GetFile(match, responder);
    co_return;
  }
  if (match.route == Route::kGetArchive) {
    co_await GetArchive(match, responder);
    co_return;
  }
  if (match.route == Route::kEvents) {
    co_await StreamEvents(match, responder);
    co_return;
  }
  if (match.route == Route::kEgressLog) {
    co_await StreamEgress(match, responder);
    co_return;
  }
  HttpResponse response;
  try {
    response = co_await HandleSimple(match, std::move(body));
  } catch (const std::exception& e) {
    Logger("api")->error("{} {}: {}", RouteName(match.route), match.vm_id, e.what());
    response = ErrorResponse(Error{ErrorCode::kInternal, std::string("internal error: ") + e.what()});
  }
  co_await responder.Send(std::move(response));
}

awaitable<HttpResponse> ApiHandlers::HandleSimple(const RouteMatch& match, std::string body) {
  const std::string& id = match.vm_id;
  switch (match.route) {
    case Route::kCreateVm: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto request = ParseCreateVmBody(body);
      if (!request) co_return ErrorResponse(request.error());
      request->caller = match.caller;
      auto info = co_await service_.Create(std::move(*request));
      if (!info) co_return ErrorResponse(info.error());
      co_return JsonResponse(201, VmInfoToJson(*info));
    }
    case Route::kListVms: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto vms = service_.List();
      if (!vms) co_return ErrorResponse(vms.error());
      co_return JsonResponse(200, VmListToJson(*vms));
    }
    case Route::kGetVm: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto info = service_.Get(id);
      if (!info) co_return ErrorResponse(info.error());
      co_return JsonResponse(200, VmInfoToJson(*info));
    }
    case Route::kDeleteVm: {
      auto force = ParseDeleteQuery(match.query);
      if (!force) co_return ErrorResponse(force.error());
      auto done = co_await service_.Destroy(id, *force);
      if (!done) co_return ErrorResponse(done.error());
      co_return NoContent();
    }
    case Route::kStopVm: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto info = co_await service_.Stop(id);
      if (!info) co_return ErrorResponse(info.error());
      co_return JsonResponse(200, VmInfoToJson(*info));
    }
    case Route::kConsole: {
      auto max_bytes = ParseConsoleQuery(match.query);
      if (!max_bytes) co_return ErrorResponse(max_bytes.error());
      auto text = service_.Console(id, *max_bytes);
      if (!text) co_return ErrorResponse(text.error());
      // Raw guest bytes: no charset is claimed.
      co_return HttpResponse{200, "text/plain", std::move(*text), {}};
    }
    case Route::kReleaseVm: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto done = co_await service_.Release(id);
      if (!done) co_return ErrorResponse(done.error());
      co_return NoContent();
    }
    case Route::kListPools: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto pools = service_.Pools();
      if (!pools) co_return ErrorResponse(pools.error());
      co_return JsonResponse(200, PoolListToJson(*pools));
    }
    case Route::kListPresets: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto presets = service_.Presets();
      if (!presets) co_return ErrorResponse(presets.error());
      co_return JsonResponse(200, PresetListToJson(*presets));
    }
    case Route::kSaveSnapshot: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto name = ParseSaveSnapshotBody(body);
      if (!name) co_return ErrorResponse(name.error());
      auto info = co_await service_.SaveSnapshot(id, *name);
      if (!info) co_return ErrorResponse(info.error());
      co_return JsonResponse(201, SnapshotInfoToJson(*info));
    }
    case Route::kListSnapshots: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto snapshots = co_await service_.ListSnapshots(id);
      if (!snapshots) co_return ErrorResponse(snapshots.error());
      co_return JsonResponse(200, SnapshotListToJson(*snapshots));
    }
    case Route::kRestoreSnapshot: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto done = co_await service_.RestoreSnapshot(id, match.snapshot);
      if (!done) co_return ErrorResponse(done.error());
      co_return NoContent();
    }
    case Route::kDeleteSnapshot: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto done = co_await service_.DeleteSnapshot(id, match.snapshot);
      if (!done) co_return ErrorResponse(done.error());
      co_return NoContent();
    }
    case Route::kUpdateNetwork: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto update = ParseNetworkPatchBody(body);
      if (!update) co_return ErrorResponse(update.error());
      auto info = service_.UpdateNetwork(id, *update);
      if (!info) co_return ErrorResponse(info.error());
      co_return JsonResponse(200, VmInfoToJson(*info));
    }
    case Route::kMetrics: {
      if (auto ok = ExpectNoQuery(match.query); !ok) co_return ErrorResponse(ok.error());
      auto text = co_await service_.MetricsText();
      if (!text) co_return ErrorResponse(text.error());
      co_return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", std::move(*text), {}};
    }
    case Route::kExec:
    case Route::kExecInteractive:  // the connection upgrades it (exec_websocket.h)
    case Route::kPutFile:          // streamed: file_handlers.cc
    case Route::kGetFile:
    case Route::kPutArchive:
    case Route::kGetArchive:
    case Route::kEvents:     // streamed: event_handler.cc
    case Route::kEgressLog:
      break;
  }
  co_return ErrorResponse(Error{ErrorCode::kInternal, "unhandled route"});
}

}  // namespace agentvm::api
