// The stdin pump of an exec whose stdin is a request body (a streamed exec,
// a directory upload): the body's bytes go to the command as it reads them,
// the body's end is stdin's end, a client gone mid-body kills the command.
#pragma once

#include <memory>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/notifier.h"
#include "supervisor/api/handlers.h"
#include "supervisor/exec_stream.h"

namespace agentvm::api {

struct StdinPump {
  explicit StdinPump(boost::asio::any_io_executor executor) : done(executor) {}
  Notifier done;
  bool running = true;
};

// Runs until the body ended, the command stopped taking stdin, or the
// client went away; then clears `pump->running` and notifies `pump->done`.
boost::asio::awaitable<void> PumpStdin(std::shared_ptr<ExecStream> exec, BodySource& body,
                                       std::shared_ptr<StdinPump> pump, std::string vm_id);

// The pump reads from the connection: it must be done before the handler
// returns. A body the command did not want is not read to its end: the
// connection is dropped.
boost::asio::awaitable<void> StopPump(const std::shared_ptr<StdinPump>& pump, Responder& responder);

}  // namespace agentvm::api
