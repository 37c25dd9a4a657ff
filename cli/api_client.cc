#include "cli/api_client.h"

#include <sys/socket.h>

#include <cstring>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "cli/interrupt.h"
#include "cli/ndjson_lines.h"
#include "supervisor/api/encoding.h"
#include "supervisor/api/json_codec.h"

namespace agentvm::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Socket = asio::local::stream_protocol::socket;

// Files can be large; the server bounds what it sends anyway.
constexpr std::uint64_t kMaxResponseBytes = std::uint64_t{4} << 30;

std::string VmPath(const std::string& id) { return "/v1/vms/" + api::PercentEncode(id); }

std::string FileTarget(const std::string& id, const std::string& path, std::uint32_t mode) {
  char mode_text[8];
  std::snprintf(mode_text, sizeof mode_text, "%04o", mode & 07777);
  return VmPath(id) + "/files?path=" + api::PercentEncode(path) + "&mode=" + mode_text;
}

// Uploads go out in HTTP chunks of about this size.
constexpr std::size_t kUploadChunkBytes = 256 * 1024;

std::string SnapshotPath(const std::string& id, const std::string& name) {
  return VmPath(id) + "/snapshots/" + api::PercentEncode(name);
}

Error ConnectError(const std::string& path, int err) {
  std::string message = "cannot connect to " + path + ": " + std::strerror(err);
  if (err == ENOENT || err == ECONNREFUSED) message += " (is agentvmd running?)";
  if (err == EACCES || err == EPERM) message += " (not allowed: run as root or a member of the socket's group)";
  return Error{ErrorCode::kUnavailable, std::move(message)};
}

Error TransportError(const std::string& path, const beast::error_code& ec) {
  return Error{ErrorCode::kUnavailable,
               "lost the connection to agentvmd (" + path + "): " + ec.message()};
}

// A connected socket plus the request already written to it.
class Exchange {
 public:
  explicit Exchange(const std::string& path) : path_(path), socket_(io_) {}

  Result<void> Open(std::string_view method, const std::string& target, std::string body,
                    std::string_view content_type) {
    if (auto connected = Connect(); !connected) return connected;
    return Send(method, target, std::move(body), content_type);
  }

  Result<void> Connect() {
    beast::error_code ec;
    socket_.connect(asio::local::stream_protocol::endpoint(path_), ec);
    if (ec) return Fail(ConnectError(path_, ec.value()));
    return {};
  }

  Result<void> Send(std::string_view method, const std::string& target, std::string body,
                    std::string_view content_type) {
    beast::error_code ec;
    http::request<http::string_body> request;
    request.method_string(beast::string_view(method.data(), method.size()));
    request.target(beast::string_view(target.data(), target.size()));
    request.version(11);
    request.set(http::field::host, "agentvmd");
    request.set(http::field::user_agent, "agentvm");
    request.keep_alive(false);
    if (!content_type.empty()) {
      request.set(http::field::content_type,
                  beast::string_view(content_type.data(), content_type.size()));
    }
    request.body() = std::move(body);
    request.prepare_payload();
    http::write(socket_, request, ec);
    // A server refusing the request (413) may answer and close before
    // reading the whole body; its answer is still worth reading.
    if (ec && ec != asio::error::broken_pipe && ec != asio::error::connection_reset) {
      return Fail(TransportError(path_, ec));
    }
    return {};
  }

  Result<ApiClient::Reply> ReadWhole() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBytes);
    beast::error_code ec;
    http::read(socket_, buffer_, parser, ec);
    if (ec) return Fail(TransportError(path_, ec));
    return ApiClient::Reply{static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
  }

  Socket& socket() { return socket_; }
  beast::flat_buffer& buffer() { return buffer_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  asio::io_context io_;
  Socket socket_;
  beast::flat_buffer buffer_;
};

Result<nlohmann::json> ParseBody(const std::string& body) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return Fail(ErrorCode::kInternal, "malformed response from agentvmd: not JSON");
  }
  return json;
}

}  // namespace

Result<ApiClient::Reply> ApiClient::Call(std::string_view method, const std::string& target,
                                         std::string body, std::string_view content_type) {
  Exchange exchange(socket_path_);
  if (auto ok = exchange.Open(method, target, std::move(body), content_type); !ok) {
    return Fail(ok.error());
  }
  return exchange.ReadWhole();
}

Result<std::string> ApiClient::Expect(int expected, std::string_view method,
                                      const std::string& target, std::string body,
                                      std::string_view content_type) {
  auto reply = Call(method, target, std::move(body), content_type);
  if (!reply) return Fail(reply.error());
  if (reply->status != expected) return Fail(api::ErrorFromResponse(reply->status, reply->body));
  return std::move(reply->body);
}

Result<void> ApiClient::ExpectNoContent(std::string_view method, const std::string& target,
                                        std::string body, std::string_view content_type) {
  auto reply = Call(method, target, std::move(body), content_type);
  if (!reply) return Fail(reply.error());
  if (reply->status != 204 && reply->status != 200) {
    return Fail(api::ErrorFromResponse(reply->status, reply->body));
  }
  return {};
}

Result<VmInfo> ApiClient::CreateVm(const CreateVmRequest& request) {
  auto body = Expect(201, "POST", "/v1/vms", api::CreateVmRequestToJson(request),
                     "application/json");
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::VmInfoFromJson(*json);
}

Result<VmInfo> ApiClient::UpdateNetwork(const std::string& id, const NetworkUpdate& update) {
  nlohmann::json patch = nlohmann::json::object();
  if (update.allow_tcp_ports) patch["allow_tcp_ports"] = *update.allow_tcp_ports;
  if (update.allow_cidrs) patch["allow_cidrs"] = *update.allow_cidrs;
  if (update.allow_domains) patch["allow_domains"] = *update.allow_domains;
  if (update.presets) patch["presets"] = *update.presets;
  if (update.bandwidth_bytes_per_sec) {
    patch["bandwidth_bytes_per_sec"] =
        *update.bandwidth_bytes_per_sec ? nlohmann::json(**update.bandwidth_bytes_per_sec) : nlohmann::json(nullptr);
  }
  auto body = Expect(200, "PATCH", VmPath(id) + "/network", patch.dump(), "application/json");
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::VmInfoFromJson(*json);
}

Result<std::string> ApiClient::ListVmsJson() { return Expect(200, "GET", "/v1/vms"); }

Result<std::vector<VmInfo>> ApiClient::ListVms() {
  auto body = ListVmsJson();
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::VmListFromJson(*json);
}

Result<std::string> ApiClient::GetVmJson(const std::string& id) {
  return Expect(200, "GET", VmPath(id));
}

Result<VmInfo> ApiClient::GetVm(const std::string& id) {
  auto body = GetVmJson(id);
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::VmInfoFromJson(*json);
}

Result<VmInfo> ApiClient::StopVm(const std::string& id) {
  auto body = Expect(200, "POST", VmPath(id) + "/stop");
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::VmInfoFromJson(*json);
}

Result<void> ApiClient::DestroyVm(const std::string& id, bool force) {
  return ExpectNoContent("DELETE", VmPath(id) + (force ? "?force=true" : ""));
}

Result<void> ApiClient::WriteFile(const std::string& id, const std::string& path,
                                  std::string data, std::uint32_t mode) {
  return ExpectNoContent("PUT", FileTarget(id, path, mode), std::move(data), "application/octet-stream");
}

Result<std::string> ApiClient::ReadFile(const std::string& id, const std::string& path) {
  return Expect(200, "GET", VmPath(id) + "/files?path=" + api::PercentEncode(path));
}

Result<void> ApiClient::PutStreamed(const std::string& target, std::string_view content_type,
                                    const BodyProducer& body) {
  Exchange exchange(socket_path_);
  if (auto ok = exchange.Connect(); !ok) return ok;
  Socket& socket = exchange.socket();
  http::request<http::empty_body> request{http::verb::put, target, 11};
  request.set(http::field::host, "agentvmd");
  request.set(http::field::user_agent, "agentvm");
  request.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  request.keep_alive(false);
  request.chunked(true);
  http::request_serializer<http::empty_body> serializer{request};
  beast::error_code ec;
  http::write_header(socket, serializer, ec);
  // The server may refuse (a bad path, a failed write in the VM) and close
  // before it has read everything: then its answer is what counts.
  bool refused = !!ec;
  std::string pending;
  auto flush = [&]() -> Result<void> {
    if (pending.empty() || refused) return {};
    asio::write(socket, http::make_chunk(asio::buffer(pending)), ec);
    pending.clear();
    if (ec) refused = true;
    if (refused) return Fail(ErrorCode::kUnavailable, "agentvmd stopped reading the upload");
    return {};
  };
  auto produced = body([&](std::string_view bytes) -> Result<void> {
    if (refused) return Fail(ErrorCode::kUnavailable, "agentvmd stopped reading the upload");
    pending.append(bytes);
    if (pending.size() < kUploadChunkBytes) return {};
    return flush();
  });
  if (!produced && !refused) return produced;  // our own failure (a local read): the request is dropped
  if (!refused) {
    if (auto ok = flush(); ok) asio::write(socket, http::make_chunk_last(), ec);
  }
  auto reply = exchange.ReadWhole();
  if (!reply) return Fail(reply.error());
  if (reply->status != 204 && reply->status != 200) return Fail(api::ErrorFromResponse(reply->status, reply->body));
  return {};
}

Result<void> ApiClient::GetStreamed(const std::string& target, const BodySink& sink) {
  Exchange exchange(socket_path_);
  if (auto ok = exchange.Open("GET", target, {}, {}); !ok) return ok;
  http::response_parser<http::string_body> parser;
  beast::error_code ec;
  http::read_header(exchange.socket(), exchange.buffer(), parser, ec);
  if (ec) return Fail(TransportError(exchange.path(), ec));
  if (parser.get().result_int() != 200) {
    parser.body_limit(kMaxResponseBytes);
    http::read(exchange.socket(), exchange.buffer(), parser, ec);
    if (ec) return Fail(TransportError(exchange.path(), ec));
    return Fail(api::ErrorFromResponse(parser.get().result_int(), parser.get().body()));
  }
  std::optional<Error> failure;
  auto on_chunk = [&](std::uint64_t, beast::string_view data, beast::error_code& chunk_ec) {
    if (auto ok = sink(std::string_view(data.data(), data.size())); !ok) {
      failure = ok.error();
      chunk_ec = asio::error::operation_aborted;
    }
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  // As long as the file or tree is: handed on, never collected.
  parser.body_limit(boost::none);
  http::read(exchange.socket(), exchange.buffer(), parser, ec);
  if (failure) return Fail(*failure);
  // Without chunked encoding (an HTTP/1.0 peer) the bytes land in the body.
  if (!parser.get().body().empty()) {
    if (auto ok = sink(parser.get().body()); !ok) return ok;
  }
  // A body cut short (the VM's side failed half-way) is an error, never a
  // short file.
  if (ec) return Fail(TransportError(exchange.path(), ec));
  return {};
}

Result<void> ApiClient::UploadFile(const std::string& id, const std::string& path, std::uint32_t mode,
                                   const BodyProducer& body) {
  return PutStreamed(FileTarget(id, path, mode), "application/octet-stream", body);
}

Result<void> ApiClient::DownloadFile(const std::string& id, const std::string& path, const BodySink& sink) {
  return GetStreamed(VmPath(id) + "/files?path=" + api::PercentEncode(path), sink);
}

Result<void> ApiClient::UploadTree(const std::string& id, const std::string& dir, const BodyProducer& body) {
  return PutStreamed(VmPath(id) + "/archive?path=" + api::PercentEncode(dir), "application/x-tar", body);
}

Result<void> ApiClient::DownloadTree(const std::string& id, const std::string& dir, const BodySink& sink) {
  return GetStreamed(VmPath(id) + "/archive?path=" + api::PercentEncode(dir), sink);
}

Result<void> ApiClient::StreamEvents(const std::map<std::string, std::string>& query, const BodySink& sink) {
  std::string target = "/v1/events";
  char separator = '?';
  for (const auto& [name, value] : query) {
    target += separator + name + "=" + api::PercentEncode(value);
    separator = '&';
  }
  return GetStreamed(target, sink);
}

Result<std::string> ApiClient::Console(const std::string& id) {
  return Expect(200, "GET", VmPath(id) + "/console");
}

Result<void> ApiClient::ExecDetached(const std::string& id, const protocol::ExecRequest& request) {
  auto body = Expect(202, "POST", VmPath(id) + "/exec", api::ExecRequestToJson(request), "application/json");
  if (!body) return Fail(body.error());
  return {};
}

Result<void> ApiClient::ReleaseVm(const std::string& id) {
  return ExpectNoContent("POST", VmPath(id) + "/release");
}

Result<std::string> ApiClient::ListPoolsJson() { return Expect(200, "GET", "/v1/pools"); }

Result<std::string> ApiClient::ListPresetsJson() { return Expect(200, "GET", "/v1/presets"); }

Result<std::vector<net::EgressPreset>> ApiClient::ListPresets() {
  auto body = ListPresetsJson();
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::PresetListFromJson(*json);
}

Result<std::vector<net::EgressEntry>> ApiClient::EgressLog(const std::string& id, std::uint64_t after) {
  auto body = Expect(200, "GET", VmPath(id) + "/egress?after=" + std::to_string(after));
  if (!body) return Fail(body.error());
  std::vector<net::EgressEntry> entries;
  NdjsonLines lines("an egress log line", [&](std::string_view line) -> Result<void> {
    auto entry = net::EgressEntryFromJson(line);
    if (!entry) return Fail(ErrorCode::kInternal, "agentvmd sent a bad egress log line: " + entry.error().message);
    entries.push_back(std::move(*entry));
    return {};
  });
  auto parsed = lines.Feed(*body);
  if (parsed) parsed = lines.Finish();
  if (!parsed) return Fail(parsed.error());
  return entries;
}

Result<void> ApiClient::FollowEgressLog(const std::string& id, const BodySink& sink) {
  return GetStreamed(VmPath(id) + "/egress?follow=true", sink);
}

Result<std::vector<PoolInfo>> ApiClient::ListPools() {
  auto body = ListPoolsJson();
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::PoolListFromJson(*json);
}

Result<SnapshotInfo> ApiClient::SaveSnapshot(const std::string& id, const std::string& name) {
  auto body = Expect(201, "POST", VmPath(id) + "/snapshots", api::SaveSnapshotRequestToJson(name),
                     "application/json");
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::SnapshotInfoFromJson(*json);
}

Result<std::string> ApiClient::ListSnapshotsJson(const std::string& id) {
  return Expect(200, "GET", VmPath(id) + "/snapshots");
}

Result<std::vector<SnapshotInfo>> ApiClient::ListSnapshots(const std::string& id) {
  auto body = ListSnapshotsJson(id);
  if (!body) return Fail(body.error());
  auto json = ParseBody(*body);
  if (!json) return Fail(json.error());
  return api::SnapshotListFromJson(*json);
}

Result<void> ApiClient::RestoreSnapshot(const std::string& id, const std::string& name) {
  return ExpectNoContent("POST", SnapshotPath(id, name) + "/restore");
}

Result<void> ApiClient::DeleteSnapshot(const std::string& id, const std::string& name) {
  return ExpectNoContent("DELETE", SnapshotPath(id, name));
}

Result<protocol::ExecResult> ApiClient::Exec(const std::string& id,
                                             const protocol::ExecRequest& request,
                                             const ExecOutput& output) {
  Exchange exchange(socket_path_);
  if (auto ok = exchange.Connect(); !ok) return Fail(ok.error());
  ActiveFd active(active_fd_, exchange.socket().native_handle());
  if (auto ok = exchange.Send("POST", VmPath(id) + "/exec", api::ExecRequestToJson(request),
                              "application/json");
      !ok) {
    return Fail(ok.error());
  }

  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  beast::error_code ec;
  http::read_header(exchange.socket(), exchange.buffer(), parser, ec);
  if (ec) return Fail(TransportError(exchange.path(), ec));
  if (parser.get().result_int() != 200) {
    http::read(exchange.socket(), exchange.buffer(), parser, ec);
    if (ec) return Fail(TransportError(exchange.path(), ec));
    return Fail(api::ErrorFromResponse(parser.get().result_int(), parser.get().body()));
  }

  // Events are split into lines here; a line may span chunks. `scanned`:
  // how much of `pending` is known to hold no newline, so a long line that
  // arrives in many pieces is searched once, not once per piece.
  std::string pending;
  std::size_t scanned = 0;
  std::optional<protocol::ExecResult> result;
  std::optional<Error> failure;
  bool stopped_by_output = false;
  auto consume = [&](std::string_view data) {
    pending.append(data);
    std::size_t start = 0;
    for (auto newline = pending.find('\n', scanned); newline != std::string::npos;
         newline = pending.find('\n', start)) {
      std::string_view line(pending.data() + start, newline - start);
      start = newline + 1;
      if (line.empty()) continue;
      auto event = api::ParseExecEvent(line);
      if (!event) {
        failure = event.error();
        continue;
      }
      switch (event->type) {
        case api::ExecEvent::Type::kStdout:
        case api::ExecEvent::Type::kStderr: {
          auto stream = event->type == api::ExecEvent::Type::kStdout
                            ? protocol::OutputStream::kStdout
                            : protocol::OutputStream::kStderr;
          if (!stopped_by_output && !output(stream, event->data)) stopped_by_output = true;
          break;
        }
        case api::ExecEvent::Type::kExit:
          result = event->result;
          break;
        case api::ExecEvent::Type::kError:
          failure = event->error;
          break;
      }
    }
    pending.erase(0, start);
    scanned = pending.size();
  };
  auto on_chunk = [&](std::uint64_t, beast::string_view data, beast::error_code& chunk_ec) {
    consume(std::string_view(data.data(), data.size()));
    if (stopped_by_output) chunk_ec = asio::error::operation_aborted;
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  // An exec's output is as long as the command makes it; the chunks are
  // handed on as they come, never collected, so the stream has no limit.
  parser.body_limit(boost::none);
  http::read(exchange.socket(), exchange.buffer(), parser, ec);
  // Without chunked encoding (HTTP/1.0 peers) the events land in the body.
  if (!parser.get().body().empty()) consume(parser.get().body());

  if (stopped_by_output) {
    return Fail(ErrorCode::kUnavailable, "stopped reading the command's output");
  }
  if (failure) return Fail(*failure);
  if (result) return *result;
  if (ec) return Fail(TransportError(exchange.path(), ec));
  return Fail(ErrorCode::kUnavailable, "agentvmd ended the exec stream without an exit status");
}

}  // namespace agentvm::cli
