// ApiServer: agentvmd's HTTP/1.1 + JSON API on a unix socket. It parses each
// request into a typed VmService call and never touches VM state itself.
//
// Start, Stop and the destructor must run on the io_context's thread, like
// everything else in the daemon.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/io_context.hpp>

#include "common/error.h"
#include "supervisor/vm_service.h"

namespace agentvm::api {

struct ApiOptions {
  std::string socket_path = "/run/agentvm/agentvm.sock";
  std::uint32_t socket_mode = 0660;
  // Bodies of POST .../exec (which carries stdin). File and directory
  // uploads and streamed stdin have no limit: they are passed on as they come.
  std::size_t max_body_bytes = 64 << 20;
  // Every other JSON body.
  std::size_t max_json_body_bytes = 1 << 20;
  std::uint32_t max_header_bytes = 16 << 10;
  // Budget for a request's header, counted from when the connection opened
  // or finished its previous request: also how long an idle keep-alive
  // connection is kept (slowloris guard).
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  // Budget for reading a request's body.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);
  // Budget for each write to the client.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(60);
  // When this many are open, a new connection closes the one that has been
  // waiting longest for a request header; with none waiting, it is refused.
  // So idle clients cannot lock others out, and a request being served is
  // never cut off.
  std::size_t max_connections = 256;
  // Where one JSON line per changing call is appended (audit_log.h); empty: no audit log.
  std::string audit_log_path;
};

class ApiServer {
 public:
  ApiServer(boost::asio::io_context& io, VmService& service, ApiOptions options);
  ~ApiServer();  // Stop()

  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Creates the socket's parent directory (0755) if missing, replaces a stale
  // socket file but refuses one that something still answers on (kConflict)
  // and anything that is not a socket, binds, sets the mode, listens, and
  // starts accepting on the io_context.
  Result<void> Start();

  // Stops accepting, closes every connection and removes the socket file (if
  // it is still the one Start created). Execs already started keep running
  // to completion in the service. Idempotent.
  void Stop();

  const ApiOptions& options() const;

  struct State;  // opaque; named here only for api_server.cc

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<State> state_;
};

}  // namespace agentvm::api
