// MetricsServer: GET /metrics on TCP (`metrics_listen: 127.0.0.1:9464`), for
// a Prometheus that scrapes over the network. It serves that one path and
// nothing of the API: a deliberately small server of its own (one request per
// connection, GET only, no body, a bounded header, a deadline for the whole
// exchange, a cap on open connections), so no route of the unix-socket API
// can ever be reached over TCP.
//
// Any address may be given (Prometheus usually scrapes from another host);
// the metrics name VMs and count their work, so a non-loopback address is
// logged as a warning at start (docs/operations.md, "Metrics").
//
// Start, Stop and the destructor run on the io_context's thread.
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

struct MetricsServerOptions {
  std::string host;  // an IPv4 or IPv6 literal (config.h ParseMetricsListen)
  std::uint16_t port = 0;
  std::size_t max_connections = 16;
  std::uint32_t max_header_bytes = 8 << 10;
  // The whole exchange: request, scrape, answer.
  std::chrono::milliseconds timeout = std::chrono::seconds(15);
};

class MetricsServer {
 public:
  MetricsServer(boost::asio::io_context& io, VmService& service, MetricsServerOptions options);
  ~MetricsServer();  // Stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens (SO_REUSEADDR); port 0 picks a free one (tests).
  Result<void> Start();
  // Stops accepting and closes the open connections. Idempotent.
  void Stop();
  // The bound port, once started.
  std::uint16_t port() const;

  struct State;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<State> state_;
};

}  // namespace agentvm::api
