// GET /v1/events: the daemon's events as NDJSON, one object per line
// (event_log.h), replayed from the ring and/or followed as they happen.
// Part of ApiHandlers.
#include <chrono>

#include <boost/asio/this_coro.hpp>

#include "supervisor/api/handlers.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/request_validation.h"
#include "supervisor/event_log.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

// How often a quiet followed stream checks that its connection is still
// open (the server may have been stopped); nothing is written then.
constexpr std::chrono::seconds kIdleCheck{1};

std::string EventLine(const Event& event) { return DumpJson(EventToJson(event)) + "\n"; }

}  // namespace

awaitable<void> ApiHandlers::StreamEvents(const RouteMatch& match, Responder& responder) {
  auto query = ParseEventsQuery(match.query);
  if (!query) {
    co_await responder.Send(ErrorResponse(query.error()));
    co_return;
  }
  EventLog& log = service_.Events();
  const EventFilter filter{.vm = query->vm, .types = query->types};
  // Subscribed before the replay is taken, with no co_await between: no
  // event falls between the two, none comes twice.
  std::shared_ptr<EventSubscription> subscription;
  auto executor = co_await asio::this_coro::executor;
  if (query->follow) subscription = log.Subscribe(executor, filter);
  std::vector<Event> replay;
  if (query->since || !query->follow) replay = log.Since(query->since.value_or(0), filter);

  bool open = co_await responder.BeginStream(200, "application/x-ndjson");
  for (const Event& event : replay) {
    if (!open) break;
    std::string line = EventLine(event);
    open = co_await responder.WriteChunk(std::move(line));
  }
  if (subscription && open) {
    responder.WatchForClientGone([subscription] { subscription->Close(); });
    while (open) {
      auto next = co_await subscription->NextUntil(std::chrono::steady_clock::now() + kIdleCheck);
      std::string line;
      if (next) {
        line = EventLine(*next);
      } else if (subscription->closed()) {
        break;  // the client went, or the daemon is going
      }
      // An empty line writes nothing: it only says whether the connection
      // is still open.
      open = co_await responder.WriteChunk(std::move(line));
    }
  }
  if (open) co_await responder.EndStream();
}

}  // namespace agentvm::api
