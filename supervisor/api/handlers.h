// ApiHandlers: one routed, validated request in; calls on VmService; a
// response out through a Responder. Knows nothing of Beast or sockets: the
// connection (http_connection.cc) implements Responder over HTTP/1.1.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json_fwd.hpp>

#include "common/error.h"
#include "supervisor/api/router.h"
#include "supervisor/vm_service.h"

namespace agentvm::api {

struct HttpResponse {
  int status = 200;
  std::string content_type;  // empty when there is no body
  std::string body;
  std::string allow;  // the Allow header of a 405
};

HttpResponse JsonResponse(int status, const nlohmann::ordered_json& body);
// {"error": ..., "code": ...} with the status that fits the code.
HttpResponse ErrorResponse(const Error& error);
HttpResponse ErrorResponse(int status, const Error& error);

// How a handler answers. Each call returns false once the peer is gone; a
// handler then stops writing (but never cancels what it started in the VM).
class Responder {
 public:
  virtual ~Responder() = default;
  virtual boost::asio::awaitable<bool> Send(HttpResponse response) = 0;
  // A streamed body: BeginStream once, WriteChunk any number of times, then
  // EndStream.
  virtual boost::asio::awaitable<bool> BeginStream(int status, std::string content_type) = 0;
  virtual boost::asio::awaitable<bool> WriteChunk(std::string data) = 0;
  virtual boost::asio::awaitable<bool> EndStream() = 0;
  // Drops the connection without finishing the response.
  virtual void Abort() = 0;
  // Calls `on_gone` once if the client closes its end before the response
  // is over (a long silent stream would otherwise notice only at its next
  // write). Watching stops when the handler returns.
  virtual void WatchForClientGone(std::function<void()> on_gone) = 0;
};

// A request body read as it arrives (an exec's streamed stdin).
class BodySource {
 public:
  virtual ~BodySource() = default;
  // The next bytes of the body; empty once all of it has been read; an error
  // if the client went away or the body is malformed.
  virtual boost::asio::awaitable<Result<std::string>> NextBodyChunk() = 0;
};

// An exec whose stdin streams in its request body (POST .../exec?stdin=stream):
// the body's first line is the exec request's JSON, the rest is stdin.
bool IsStreamingExec(const RouteMatch& match);
// Requests whose body the handler reads as it arrives, without a size
// limit: a streaming exec, a file upload, a directory (tar) upload.
bool HasStreamedBody(const RouteMatch& match);

class ApiHandlers {
 public:
  explicit ApiHandlers(VmService& service) : service_(service) {}

  // Answers exactly once through `responder` (or aborts it).
  boost::asio::awaitable<void> Handle(const RouteMatch& match, std::string body,
                                      Responder& responder);
  // A HasStreamedBody request, whose body has not been read.
  boost::asio::awaitable<void> HandleStreamedBody(const RouteMatch& match, BodySource& body, Responder& responder);

  VmService& service() { return service_; }

 private:
  boost::asio::awaitable<HttpResponse> HandleSimple(const RouteMatch& match, std::string body);
  boost::asio::awaitable<void> HandleStreamingExec(const RouteMatch& match, BodySource& body,
                                                   Responder& responder);
  // file_handlers.cc: files and trees, streamed both ways.
  boost::asio::awaitable<void> PutFile(const RouteMatch& match, BodySource& body, Responder& responder);
  boost::asio::awaitable<void> GetFile(const RouteMatch& match, Responder& responder);
  boost::asio::awaitable<void> PutArchive(const RouteMatch& match, BodySource& body, Responder& responder);
  boost::asio::awaitable<void> GetArchive(const RouteMatch& match, Responder& responder);
  // event_handler.cc: GET /v1/events and GET /v1/vms/{id}/egress, replayed
  // from the ring and/or followed.
  boost::asio::awaitable<void> StreamEvents(const RouteMatch& match, Responder& responder);
  boost::asio::awaitable<void> StreamEgress(const RouteMatch& match, Responder& responder);
  boost::asio::awaitable<void> HandleExec(const RouteMatch& match, std::string body,
                                          Responder& responder);
  // Runs a parsed exec and streams its output; stdin comes from `stdin_body`
  // when given.
  boost::asio::awaitable<void> RunExec(const RouteMatch& match, protocol::ExecRequest request,
                                       Responder& responder, BodySource* stdin_body);

  VmService& service_;
};

}  // namespace agentvm::api
