// The interactive exec: GET /v1/vms/{id}/exec?request=<exec request JSON>
// upgraded to a WebSocket that speaks the Kubernetes exec channels
// (exec_channels.h): stdin, resizes and the end of stdin in; stdout, stderr
// and the final status out. Output is taken from the ExecStream only as
// fast as the client reads it, and stdin only as fast as the program does.
// Beast stays inside exec_websocket.cc and http_connection.cc.
#pragma once

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "supervisor/api/handlers.h"
#include "supervisor/api/router.h"
#include "supervisor/vm_service.h"

namespace agentvm::api {

using ApiStream = boost::beast::basic_stream<boost::asio::local::stream_protocol>;

// Serves one interactive exec on `stream`, whose upgrade request is
// `upgrade`. A request that cannot start (bad JSON, no such VM, program not
// found) is answered with a plain HTTP error through `responder` and no
// upgrade. Returns when the exec has ended or the client has gone; the
// connection is not reused either way.
boost::asio::awaitable<void> ServeExecWebSocket(VmService& service, ApiStream& stream,
                                                boost::beast::http::request<boost::beast::http::string_body> upgrade,
                                                const RouteMatch& match, Responder& responder);

}  // namespace agentvm::api
