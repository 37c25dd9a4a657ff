// POST /v1/vms/{id}/exec: a command whose output streams back as NDJSON
// events, and whose stdin is in the request (whole) or streams in its body
// (?stdin=stream). Part of ApiHandlers.
#include <signal.h>

#include <memory>
#include <optional>
#include <string>

#include "common/logging.h"
#include "common/notifier.h"
#include "common/spawn.h"
#include "supervisor/api/handlers.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"
#include "supervisor/api/stdin_pump.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

// Output events written to the client in one chunk at most: what is
// queued is sent together, so many small outputs cost few writes.
constexpr std::size_t kExecBatchBytes = 256 * 1024;
// The exec request on a streamed body's first line may be this long.
constexpr std::size_t kMaxStreamedRequestBytes = 1 << 20;

}  // namespace

awaitable<void> PumpStdin(std::shared_ptr<ExecStream> exec, BodySource& body, std::shared_ptr<StdinPump> pump,
                          std::string vm_id) {
  while (true) {
    Result<std::string> chunk = co_await body.NextBodyChunk();
    if (!chunk) {
      // The client went away mid-body: the command ends with it.
      if (!exec->finished()) {
        Logger("api")->info("{}: exec stdin: {}; killing the command", vm_id, chunk.error().message);
        exec->Signal(SIGKILL);
      }
      break;
    }
    const bool end = chunk->empty();
    auto sent = co_await exec->WriteStdin(std::move(*chunk), end);
    if (!sent || end) break;  // !sent: the command has ended; the rest of the body is not wanted
  }
  pump->running = false;
  pump->done.Notify();
}

awaitable<void> StopPump(const std::shared_ptr<StdinPump>& pump, Responder& responder) {
  while (pump && pump->running) {
    responder.Abort();
    co_await pump->done.Wait();
  }
}

bool IsStreamingExec(const RouteMatch& match) {
  auto it = match.query.find("stdin");
  return match.route == Route::kExec && it != match.query.end() && it->second == "stream";
}

// The 200 and its headers are held back until the first output (or the end),
// so an exec that fails before producing anything (no such VM, VM not
// running, no such program) still gets a plain JSON error with the right
// status. Output is taken from the stream only as fast as the client reads
// it, and the stream holds back the guest the same way: nothing is dropped
// for a slow client.
awaitable<void> ApiHandlers::HandleExec(const RouteMatch& match, std::string body, Responder& responder) {
  auto no_query = ExpectNoQuery(match.query);
  auto request = no_query ? ParseExecBody(body) : Fail(no_query.error());
  if (!request) {
    HttpResponse refusal = ErrorResponse(request.error());
    co_await responder.Send(std::move(refusal));
    co_return;
  }
  co_await RunExec(match, std::move(*request), responder, nullptr);
}

awaitable<void> ApiHandlers::HandleStreamingExec(const RouteMatch& match, BodySource& body, Responder& responder) {
  // The request is the body's first line; what follows it is stdin.
  std::string head;
  std::size_t newline = std::string::npos;
  std::optional<Error> refused;
  while (newline == std::string::npos) {
    Result<std::string> chunk = co_await body.NextBodyChunk();
    if (!chunk) co_return;  // the client is gone already
    if (chunk->empty()) {
      refused = Error{ErrorCode::kInvalidArgument, "a streamed exec's body starts with the exec request's JSON and a newline"};
      break;
    }
    head += *chunk;
    newline = head.find('\n');
    if (newline == std::string::npos && head.size() > kMaxStreamedRequestBytes) {
      refused = Error{ErrorCode::kTooLarge, "the exec request on the body's first line is longer than " +
                                                std::to_string(kMaxStreamedRequestBytes) + " bytes"};
      break;
    }
  }
  Result<protocol::ExecRequest> request = refused ? Result<protocol::ExecRequest>(Fail(*refused))
                                                  : ParseExecBody(std::string_view(head).substr(0, newline));
  if (request && (!request->stdin_data.empty() || request->detach)) {
    request = Fail(ErrorCode::kInvalidArgument, "a streamed exec takes its stdin from the body, and cannot detach");
  }
  if (!request) {
    HttpResponse refusal = ErrorResponse(request.error());
    co_await responder.Send(std::move(refusal));
    co_return;
  }
  request->stream_stdin = true;
  request->stdin_data = head.substr(newline + 1);
  co_await RunExec(match, std::move(*request), responder, &body);
}

awaitable<void> ApiHandlers::RunExec(const RouteMatch& match, protocol::ExecRequest request, Responder& responder,
                                     BodySource* stdin_body) {
  const bool detach = request.detach;
  // More than the guest's window of stdin may have arrived with the
  // request's line; it goes after the start, through the window.
  std::string early_stdin;
  if (stdin_body && request.stdin_data.size() > protocol::kStdinWindowBytes) {
    early_stdin = std::exchange(request.stdin_data, std::string());
  }
  auto started = co_await service_.StartExec(match.vm_id, std::move(request));
  if (!started) {
    HttpResponse failure = ErrorResponse(started.error());
    co_await responder.Send(std::move(failure));
    co_return;
  }
  std::shared_ptr<ExecStream> exec = std::move(*started);
  if (detach) {
    // Runs on by itself; its output goes nowhere.
    exec->Detach();
    HttpResponse accepted = JsonResponse(202, nlohmann::ordered_json{{"detached", true}});
    co_await responder.Send(std::move(accepted));
    co_return;
  }

  auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<StdinPump> pump;
  if (stdin_body) {
    // The pump reads the socket, and so sees the client go.
    pump = std::make_shared<StdinPump>(executor);
    if (!early_stdin.empty()) {
      auto sent = co_await exec->WriteStdin(std::move(early_stdin), false);
      (void)sent;  // a command that has ended already is seen below
    }
    SpawnDetached(executor, PumpStdin(exec, *stdin_body, pump, match.vm_id), match.vm_id + ": exec stdin");
  } else {
    // A command ends with its client (unless detached, above): also a
    // client that leaves while the command prints nothing.
    responder.WatchForClientGone([exec, id = match.vm_id] {
      Logger("api")->info("{}: exec client disconnected; killing the command", id);
      exec->Signal(SIGKILL);
    });
  }

  const std::string kNdjson = "application/x-ndjson";
  bool began = false;
  bool client_gone = false;
  // (Loops spelled out: g++ 12 mishandles co_await in a loop's condition.)
  while (!client_gone) {
    std::optional<ExecOutput> chunk = co_await exec->NextOutput();
    if (!chunk) break;
    std::string events = ExecOutputEvent(chunk->stream, chunk->data);
    while (exec->queued_bytes() > 0 && events.size() < kExecBatchBytes) {
      std::optional<ExecOutput> more = co_await exec->NextOutput();
      if (!more) break;
      events += ExecOutputEvent(more->stream, more->data);
    }
    if (!began) {
      std::string content_type = kNdjson;
      bool ok = co_await responder.BeginStream(200, std::move(content_type));
      if (!ok) client_gone = true;
      began = true;
    }
    if (!client_gone) {
      bool ok = co_await responder.WriteChunk(std::move(events));
      if (!ok) client_gone = true;
    }
  }
  if (client_gone) {
    // Everything the command started goes with it; what it still prints
    // goes nowhere.
    exec->Signal(SIGKILL);
    exec->Detach();
  } else {
    const Result<protocol::ExecResult>& outcome = exec->result();
    bool ok = true;
    if (!began && !outcome) {
      HttpResponse failure = ErrorResponse(outcome.error());
      co_await responder.Send(std::move(failure));
      ok = false;
    } else if (!began) {
      std::string content_type = kNdjson;
      ok = co_await responder.BeginStream(200, std::move(content_type));
    }
    if (ok) {
      std::string last;
      if (outcome) {
        last = ExecExitEvent(*outcome);
      } else {
        last = ExecErrorEvent(outcome.error());
      }
      ok = co_await responder.WriteChunk(std::move(last));
    }
    if (ok) co_await responder.EndStream();
  }
  co_await StopPump(pump, responder);
}

}  // namespace agentvm::api
