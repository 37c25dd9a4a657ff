// One way to stream a live log as NDJSON (GET /v1/events, GET
// /v1/vms/{id}/egress?follow=1): the replay's lines, then each line the
// follower gives as it comes, until the follower is closed (the daemon is
// stopping, the VM's network went: the stream ends cleanly) or the client
// goes (noticed at once through WatchForClientGone, or at the next write).
// The follower's own queue bounds what a slow reader makes the daemon hold.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "supervisor/api/handlers.h"

namespace agentvm::api {

// How often a quiet followed stream checks that its connection is still
// open (the server may have been stopped); nothing is written then.
inline constexpr std::chrono::seconds kFollowIdleCheck{1};

// `Follower` has NextUntil(deadline) -> awaitable<optional<Item>>, closed()
// and Close(); `line_of(item)` is the item's line with its '\n'. A null
// follower: the replay only.
template <typename Follower, typename LineOf>
boost::asio::awaitable<void> StreamNdjson(Responder& responder, std::vector<std::string> replay,
                                          std::shared_ptr<Follower> follower, LineOf line_of) {
  bool open = co_await responder.BeginStream(200, "application/x-ndjson");
  for (std::string& line : replay) {
    if (!open) break;
    open = co_await responder.WriteChunk(std::move(line));
  }
  if (follower && open) {
    responder.WatchForClientGone([follower] { follower->Close(); });
    while (open) {
      const auto deadline = std::chrono::steady_clock::now() + kFollowIdleCheck;
      auto next = co_await follower->NextUntil(deadline);
      std::string line;
      if (next) {
        line = line_of(*next);
      } else if (follower->closed()) {
        break;  // the client went, or the log ended
      }
      // An empty line writes nothing: it only says whether the connection
      // is still open.
      open = co_await responder.WriteChunk(std::move(line));
    }
  }
  if (open) co_await responder.EndStream();
}

}  // namespace agentvm::api
