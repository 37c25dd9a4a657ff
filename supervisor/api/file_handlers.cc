// Files and directory trees in and out of a VM (PUT/GET .../files and
// .../archive), streamed both ways: the daemon holds about a megabyte per
// transfer however large the file or the tree (docs/api.md). Part of
// ApiHandlers.
//
// A tree travels as a tar stream through the guest's own tar (busybox in
// `tiny`, GNU in `debian`), run like any exec: its stdin is the request
// body, flow controlled by the exec's stdin window; its stdout is the
// response, flow controlled by the output window. No protocol message of
// its own, and the agent stays small.
#include <signal.h>

#include <memory>
#include <optional>
#include <string>

#include "common/logging.h"
#include "common/pending.h"
#include "common/spawn.h"
#include "common/write_behind.h"
#include "protocol/messages.h"
#include "supervisor/api/handlers.h"
#include "supervisor/api/request_validation.h"
#include "supervisor/api/stdin_pump.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

constexpr std::size_t kMaxTarErrorBytes = 4096;
// Archive output handed to the client in one chunk at most.
constexpr std::size_t kArchiveBatchBytes = 256 * 1024;
const std::string kOctetStream = "application/octet-stream";
constexpr std::chrono::steady_clock::duration kNoDeadline = std::chrono::hours(24 * 365);

// Both tars take these flags. The tree lands in (or comes from) `dir`
// itself; extraction runs with umask 0 so modes arrive as sent, and never
// restores the archive's owners (`-o`): files belong to the user tar runs
// as, the VM's default user, like an exec's. Reading a tree runs as root,
// as a single file's read does (the agent reads it), so what `cp` can take
// out does not depend on -r.
std::vector<std::string> ExtractArgv(const std::string& dir) {
  return {"sh", "-c", "mkdir -p -- \"$1\" && cd -- \"$1\" && umask 0 && exec tar -x -o -f -", "agentvm-cp", dir};
}

std::vector<std::string> CreateArgv(const std::string& dir) { return {"tar", "-c", "-f", "-", "-C", dir, "."}; }

void KeepTail(std::string& errors, const std::string& more) {
  errors += more;
  if (errors.size() > kMaxTarErrorBytes) errors.erase(0, errors.size() - kMaxTarErrorBytes);
}

// Why a tar in the guest failed, from its exit and what it printed.
Error TarFailure(const std::string& what, const Result<protocol::ExecResult>& outcome, std::string errors) {
  if (!outcome) return outcome.error().Wrap(what);
  while (!errors.empty() && (errors.back() == '\n' || errors.back() == ' ')) errors.pop_back();
  if (errors.empty()) errors = "exit status " + std::to_string(outcome->ShellStatus());
  const bool missing = errors.find("No such file or directory") != std::string::npos;
  return Error{missing ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument, what + ": " + errors};
}

bool Succeeded(const Result<protocol::ExecResult>& outcome) {
  return outcome && outcome->ShellStatus() == 0;
}

// Starts the guest's tar on the request's directory, or answers why not
// (and returns null).
awaitable<std::shared_ptr<ExecStream>> StartTar(VmService& service, const RouteMatch& match, bool extract,
                                                Responder& responder) {
  auto dir = ParseGetFileQuery(match.query);
  Result<std::shared_ptr<ExecStream>> started = Fail(ErrorCode::kInternal, "not started");
  if (dir) {
    protocol::ExecRequest request;
    request.argv = extract ? ExtractArgv(*dir) : CreateArgv(*dir);
    request.stream_stdin = extract;
    if (!extract) request.user = "root";
    started = co_await service.StartExec(match.vm_id, std::move(request));
  } else {
    started = Fail(dir.error());
  }
  if (!started) {
    HttpResponse failure = ErrorResponse(started.error());
    co_await responder.Send(std::move(failure));
    co_return nullptr;
  }
  co_return std::move(*started);
}

// Starts reading the chunk of `path` at `offset`; the result lands in the
// returned Pending whether or not anyone still waits for it.
std::shared_ptr<Pending<Result<protocol::FileChunk>>> ReadAhead(asio::any_io_executor executor,
                                                                 VmService& service, std::string vm_id,
                                                                 std::string path, std::uint64_t offset) {
  auto next = std::make_shared<Pending<Result<protocol::FileChunk>>>(executor);
  SpawnDetached(
      executor,
      [&service, vm_id, path = std::move(path), offset, next]() -> awaitable<void> {
        auto chunk = co_await service.ReadFileChunk(vm_id, path, offset);
        next->Set(std::move(chunk));
      },
      vm_id + ": file read ahead");
  return next;
}

}  // namespace

bool HasStreamedBody(const RouteMatch& match) {
  return match.route == Route::kPutFile || match.route == Route::kPutArchive || IsStreamingExec(match);
}

awaitable<void> ApiHandlers::HandleStreamedBody(const RouteMatch& match, BodySource& body, Responder& responder) {
  switch (match.route) {
    case Route::kPutFile: co_await PutFile(match, body, responder); break;
    case Route::kPutArchive: co_await PutArchive(match, body, responder); break;
    default: co_await HandleStreamingExec(match, body, responder); break;
  }
}

awaitable<void> ApiHandlers::PutFile(const RouteMatch& match, BodySource& body, Responder& responder) {
  auto params = ParsePutFileQuery(match.query);
  if (!params) {
    HttpResponse refusal = ErrorResponse(params.error());
    co_await responder.Send(std::move(refusal));
    co_return;
  }
  // The body goes on in pieces of the guest's chunk size as it arrives, two
  // in flight (write_behind.h); the first piece (even an empty one) creates
  // or truncates the file.
  VmService& service = service_;
  // Not inside the constructor call: g++ 12 miscompiles a co_await in an
  // expression that also holds a lambda.
  auto executor = co_await asio::this_coro::executor;
  WriteBehind writer(
      executor,
      [&service, vm_id = match.vm_id, path = params->path, mode = params->mode](
          std::string piece, std::uint64_t offset, bool truncate) -> awaitable<Result<void>> {
        co_return co_await service.WriteFileChunk(vm_id, path, std::move(piece), offset, truncate, mode);
      },
      match.vm_id + ": write " + params->path);
  std::string pending;
  bool first = true;
  bool end = false;
  Result<void> written;
  while (!end && written) {
    Result<std::string> chunk = co_await body.NextBodyChunk();
    if (!chunk) co_return;  // the client is gone: nobody to answer (pieces in flight finish on their own)
    end = chunk->empty();
    pending += *chunk;
    while (written && (pending.size() >= protocol::kFileChunkBytes || (end && (first || !pending.empty())))) {
      std::size_t take = std::min<std::size_t>(pending.size(), protocol::kFileChunkBytes);
      written = co_await writer.Write(pending.substr(0, take));
      pending.erase(0, take);
      first = false;
    }
  }
  Result<void> finished = co_await writer.Finish();
  if (written) written = std::move(finished);
  if (!written) {
    HttpResponse failure = ErrorResponse(written.error());
    co_await responder.Send(std::move(failure));
    co_return;
  }
  HttpResponse done{204, {}, {}, {}};
  co_await responder.Send(std::move(done));
}

awaitable<void> ApiHandlers::GetFile(const RouteMatch& match, Responder& responder) {
  auto path = ParseGetFileQuery(match.query);
  Result<protocol::FileChunk> chunk = Fail(ErrorCode::kInternal, "not read");
  if (path) {
    chunk = co_await service_.ReadFileChunk(match.vm_id, *path, 0);
  } else {
    chunk = Fail(path.error());
  }
  if (!chunk) {
    HttpResponse failure = ErrorResponse(chunk.error());
    co_await responder.Send(std::move(failure));
    co_return;
  }
  // Chunked: the file may change while it is read, and a failure half-way
  // must reach the client as a cut-off body, not as a short file.
  std::string content_type = kOctetStream;
  bool ok = co_await responder.BeginStream(200, std::move(content_type));
  if (!ok) co_return;
  std::uint64_t offset = 0;
  auto executor = co_await asio::this_coro::executor;
  while (true) {
    const bool eof = chunk->info.eof || chunk->data.empty();
    offset += chunk->data.size();
    // The guest reads and sends the next chunk while this one goes to the
    // client: without the overlap the channel idles for a round trip and
    // the guest's wake-up per chunk. At most one chunk is read ahead, so
    // the daemon still holds about two per transfer.
    std::shared_ptr<Pending<Result<protocol::FileChunk>>> next;
    if (!eof) next = ReadAhead(executor, service_, match.vm_id, *path, offset);
    ok = co_await responder.WriteChunk(std::move(chunk->data));
    if (!ok) co_return;  // the read ahead finishes on its own, into nothing
    if (eof) break;
    // The read has the guest channel's own deadline; this wait needs none.
    std::optional<Result<protocol::FileChunk>> read = co_await next->Wait(kNoDeadline);
    chunk = read ? std::move(*read) : Fail(ErrorCode::kTimeout, "read ahead never finished");
    if (!chunk) {
      Logger("api")->warn("{}: read {}: {}; cutting the response short", match.vm_id, *path, chunk.error().message);
      responder.Abort();
      co_return;
    }
  }
  co_await responder.EndStream();
}

awaitable<void> ApiHandlers::PutArchive(const RouteMatch& match, BodySource& body, Responder& responder) {
  std::shared_ptr<ExecStream> exec = co_await StartTar(service_, match, /*extract=*/true, responder);
  if (!exec) co_return;
  const std::string& dir = match.query.at("path");
  auto executor = co_await asio::this_coro::executor;
  auto pump = std::make_shared<StdinPump>(executor);
  SpawnDetached(executor, PumpStdin(exec, body, pump, match.vm_id), match.vm_id + ": archive upload");
  std::string errors;
  while (true) {
    std::optional<ExecOutput> chunk = co_await exec->NextOutput();
    if (!chunk) break;
    if (chunk->stream == protocol::OutputStream::kStderr) KeepTail(errors, chunk->data);
  }
  if (Succeeded(exec->result())) {
    // tar is done with the archive; the rest of a sound body is its end.
    while (pump->running) co_await pump->done.Wait();
    HttpResponse done{204, {}, {}, {}};
    co_await responder.Send(std::move(done));
    co_return;
  }
  HttpResponse failure = ErrorResponse(TarFailure("extract into " + dir, exec->result(), std::move(errors)));
  co_await responder.Send(std::move(failure));
  co_await StopPump(pump, responder);
}

awaitable<void> ApiHandlers::GetArchive(const RouteMatch& match, Responder& responder) {
  std::shared_ptr<ExecStream> exec = co_await StartTar(service_, match, /*extract=*/false, responder);
  if (!exec) co_return;
  const std::string& dir = match.query.at("path");
  responder.WatchForClientGone([exec] { exec->Signal(SIGKILL); });
  // The 200 waits for the first bytes of the archive, so a tar that fails
  // at once (no such directory) is a plain error.
  std::string errors;
  bool began = false;
  bool gone = false;
  while (!gone) {
    std::optional<ExecOutput> chunk = co_await exec->NextOutput();
    if (!chunk) break;
    std::string batch;
    if (chunk->stream == protocol::OutputStream::kStdout) batch = std::move(chunk->data);
    if (chunk->stream == protocol::OutputStream::kStderr) KeepTail(errors, chunk->data);
    while (exec->queued_bytes() > 0 && batch.size() < kArchiveBatchBytes) {
      std::optional<ExecOutput> more = co_await exec->NextOutput();
      if (!more) break;
      if (more->stream == protocol::OutputStream::kStdout) batch += more->data;
      if (more->stream == protocol::OutputStream::kStderr) KeepTail(errors, more->data);
    }
    if (batch.empty()) continue;
    if (!began) {
      std::string content_type = "application/x-tar";
      began = true;
      bool ok = co_await responder.BeginStream(200, std::move(content_type));
      if (!ok) gone = true;
    }
    if (!gone) {
      bool ok = co_await responder.WriteChunk(std::move(batch));
      if (!ok) gone = true;
    }
  }
  if (gone) {
    exec->Signal(SIGKILL);
    exec->Detach();
    co_return;
  }
  if (Succeeded(exec->result())) {
    if (!began) {
      std::string content_type = "application/x-tar";
      bool ok = co_await responder.BeginStream(200, std::move(content_type));
      if (!ok) co_return;
    }
    co_await responder.EndStream();
    co_return;
  }
  Error failure = TarFailure("archive " + dir, exec->result(), std::move(errors));
  if (!began) {
    HttpResponse response = ErrorResponse(failure);
    co_await responder.Send(std::move(response));
    co_return;
  }
  // Half an archive is out: the client must see it cut off, not complete.
  Logger("api")->warn("{}: {}; cutting the archive short", match.vm_id, failure.message);
  responder.Abort();
}

}  // namespace agentvm::api
