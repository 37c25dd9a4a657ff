// A minimal HTTP/1.1 client for agentvmd's unix socket, on the caller's
// io_context: one fresh connection per call, as the agentvm CLI and curl do,
// so the timed round trip includes connect and accept.
#pragma once

#include <chrono>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include "common/error.h"

namespace agentvm::bench {

struct HttpReply {
  int status = 0;
  std::string body;
};

// Sends `method target` with `body` (JSON when non-empty) and reads the whole
// response, chunked or not. kTimeout when it takes longer than `timeout`,
// kUnavailable when the connection fails.
boost::asio::awaitable<Result<HttpReply>> HttpCall(std::string socket_path, std::string method,
                                                   std::string target, std::string body,
                                                   std::chrono::milliseconds timeout);

// Whether an exec reply (POST /v1/vms/{id}/exec: an NDJSON stream whose last
// line is the exit event) says the command exited 0; if not, why.
Result<void> CheckExecSucceeded(const HttpReply& reply);

}  // namespace agentvm::bench
