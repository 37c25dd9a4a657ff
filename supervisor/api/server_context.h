// What the accept loop and every connection of one ApiServer share. Held by
// shared_ptr so that connections still finishing (an exec that outlives
// Stop()) never point at a destroyed server. Internal to supervisor/api.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>

#include "supervisor/api/api_server.h"
#include "supervisor/api/audit_log.h"
#include "supervisor/api/handlers.h"

namespace agentvm::api {

struct ServerContext {
  ServerContext(VmService& service, ApiOptions opts)
      : service(service), options(std::move(opts)), handlers(service) {}

  VmService& service;
  ApiOptions options;
  ApiHandlers handlers;
  // Null without options.audit_log_path. Shared with the service's event
  // log, which records every lifecycle event in it (even after Stop(): a
  // daemon stopping its VMs still tells of them).
  std::shared_ptr<AuditLog> audit;
  // Close callbacks of the open connections, by connection number.
  std::map<std::uint64_t, std::function<void()>> connections;
  // Connections waiting for a request header, by connection number: since
  // when. The accept loop evicts the oldest of them when it is full.
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> waiting_since;
  std::uint64_t next_connection = 0;
};

}  // namespace agentvm::api
