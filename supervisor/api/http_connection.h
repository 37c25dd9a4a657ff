// One HTTP/1.1 connection on the API socket, served by its own coroutine:
// keep-alive, header and body limits, read and write timeouts. Beast stays
// inside http_connection.cc.
#pragma once

#include <memory>

#include <boost/asio/local/stream_protocol.hpp>

#include "supervisor/api/server_context.h"

namespace agentvm::api {

// Serves `socket` until the peer closes it, a timeout fires, or the server
// stops. Registers itself in context->connections while open.
void SpawnConnection(std::shared_ptr<ServerContext> context,
                     boost::asio::local::stream_protocol::socket socket);

}  // namespace agentvm::api
