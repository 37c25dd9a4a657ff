#include "supervisor/api/handlers.h"

#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/logging.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

HttpResponse JsonResponse(int status, const nlohmann::ordered_json& body) {
  return HttpResponse{status, "application/json", DumpJson(body) + "\n", {}};
}

HttpResponse NoContent() { return HttpResponse{204, {}, {}, {}}; }

// Exec output travels from the service's OutputSink (a plain callback) to the
// handler, which writes it to the client as it arrives. The exec runs in its
// own coroutine so it keeps going if the client disconnects; this is what the
// two share.
struct ExecChannel {
  explicit ExecChannel(asio::any_io_executor executor)
      : wake(executor, std::chrono::steady_clock::time_point::max()) {}

  void Push(std::string line) {
    if (abandoned || overflowed) return;
    queued_bytes += line.size();
    if (queued_bytes > max_backlog) {
      overflowed = true;
      lines.clear();
    } else {
      lines.push_back(std::move(line));
    }
    wake.cancel();
  }

  void Finish(Result<protocol::ExecResult> result) {
    outcome.emplace(std::move(result));
    wake.cancel();
  }

  std::string TakeQueued() {
    std::string chunk;
    for (auto& line : lines) chunk += line;
    lines.clear();
    queued_bytes = 0;
    return chunk;
  }

  asio::steady_timer wake;  // cancelled whenever there is something new
  std::deque<std::string> lines;
  std::size_t queued_bytes = 0;
  std::size_t max_backlog = 0;
  bool overflowed = false;
  bool abandoned = false;  // the client is gone; output is dropped
  std::optional<Result<protocol::ExecResult>> outcome;
};

awaitable<void> RunExec(VmService& service, std::string id, protocol::ExecRequest request,
                        std::shared_ptr<ExecChannel> channel) {
  Result<protocol::ExecResult> result;
  protocol::OutputSink sink = [channel](protocol::OutputStream stream, std::string_view data) {
    channel->Push(ExecOutputEvent(stream, data));
  };
  try {
    result = co_await service.Exec(id, std::move(request), std::move(sink));
  } catch (const std::exception& e) {
    result = Fail(ErrorCode::kInternal, std::string("exec failed: ") + e.what());
  }
  if (channel->abandoned) {
    Logger("api")->info("{}: exec finished after its client went away", id);
  }
  channel->Finish(std::move(result));
}

}  // namespace

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
    case Route::kPutFile: {
      auto params = ParsePutFileQuery(match.query);
      if (!params) co_return ErrorResponse(params.error());
      auto done = co_await service_.WriteFile(id, params->path, std::move(body), params->mode);
      if (!done) co_return ErrorResponse(done.error());
      co_return NoContent();
    }
    case Route::kGetFile: {
      auto path = ParseGetFileQuery(match.query);
      if (!path) co_return ErrorResponse(path.error());
      auto data = co_await service_.ReadFile(id, *path);
      if (!data) co_return ErrorResponse(data.error());
      co_return HttpResponse{200, "application/octet-stream", std::move(*data), {}};
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
    case Route::kExec:
      break;
  }
  co_return ErrorResponse(Error{ErrorCode::kInternal, "unhandled route"});
}

// The 200 and its headers are held back until the first output (or the end),
// so an exec that fails before producing anything (no such VM, VM not
// running) still gets a plain JSON error with the right status.
awaitable<void> ApiHandlers::HandleExec(const RouteMatch& match, std::string body,
                                        Responder& responder) {
  auto no_query = ExpectNoQuery(match.query);
  auto request = no_query ? ParseExecBody(body) : Fail(no_query.error());
  if (!request) {
    HttpResponse refusal = ErrorResponse(request.error());
    co_await responder.Send(std::move(refusal));
    co_return;
  }

  auto executor = co_await asio::this_coro::executor;
  auto channel = std::make_shared<ExecChannel>(executor);
  channel->max_backlog = max_exec_backlog_bytes_;
  asio::co_spawn(executor, RunExec(service_, match.vm_id, std::move(*request), channel),
                 asio::detached);

  auto log = Logger("api");
  const std::string kNdjson = "application/x-ndjson";
  bool started = false;
  auto abandon = [&] {
    channel->abandoned = true;
    channel->lines.clear();
  };
  while (true) {
    if (channel->overflowed) {
      log->warn("{}: exec client fell more than {} bytes behind; disconnecting it", match.vm_id,
                max_exec_backlog_bytes_);
      abandon();
      responder.Abort();
      co_return;
    }
    if (!channel->lines.empty()) {
      if (!started) {
        if (!co_await responder.BeginStream(200, kNdjson)) {
          abandon();
          co_return;
        }
        started = true;
      }
      std::string chunk = channel->TakeQueued();
      if (!co_await responder.WriteChunk(std::move(chunk))) {
        log->info("{}: exec client disconnected; the command keeps running", match.vm_id);
        abandon();
        co_return;
      }
      continue;
    }
    if (channel->outcome) break;
    channel->wake.expires_at(std::chrono::steady_clock::time_point::max());
    boost::system::error_code ignored;
    co_await channel->wake.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }

  Result<protocol::ExecResult>& outcome = *channel->outcome;
  if (!started) {
    if (!outcome) {
      HttpResponse failure = ErrorResponse(outcome.error());
      co_await responder.Send(std::move(failure));
      co_return;
    }
    if (!co_await responder.BeginStream(200, kNdjson)) co_return;
  }
  std::string last = outcome ? ExecExitEvent(*outcome) : ExecErrorEvent(outcome.error());
  if (!co_await responder.WriteChunk(std::move(last))) co_return;
  co_await responder.EndStream();
}

}  // namespace agentvm::api
