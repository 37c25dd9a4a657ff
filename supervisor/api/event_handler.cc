// GET /v1/events and GET /v1/vms/{id}/egress: a live log as NDJSON, one
// object per line, replayed from its ring and/or followed as it grows
// (ndjson_stream.h). Part of ApiHandlers.
#include <boost/asio/this_coro.hpp>

#include "netsetup/egress_log.h"
#include "supervisor/api/handlers.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/api/ndjson_stream.h"
#include "supervisor/api/request_validation.h"
#include "supervisor/event_log.h"

namespace agentvm::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

std::string EventLine(const Event& event) { return DumpJson(EventToJson(event)) + "\n"; }

std::string EgressLine(const net::EgressEntry& entry) { return net::EgressEntryToJson(entry) + "\n"; }

// A follower's item: an entry, or the gap a slow reader left ("dropped").
std::string EgressLine(const net::EgressFollower::Item& item) {
  if (const auto* entry = std::get_if<net::EgressEntry>(&item)) return EgressLine(*entry);
  return EgressLine(net::DroppedEntry(std::get<net::EgressFollower::Gap>(item)));
}

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
  std::vector<std::string> replay;
  if (query->since || !query->follow) {
    for (const Event& event : log.Since(query->since.value_or(0), filter)) replay.push_back(EventLine(event));
  }
  auto line_of = [](const Event& event) { return EventLine(event); };
  co_await StreamNdjson(responder, std::move(replay), std::move(subscription), line_of);
}

awaitable<void> ApiHandlers::StreamEgress(const RouteMatch& match, Responder& responder) {
  auto query = ParseEgressQuery(match.query);
  if (!query) {
    co_await responder.Send(ErrorResponse(query.error()));
    co_return;
  }
  // As for events: the follower first, then the replay, no co_await between.
  std::shared_ptr<net::EgressFollower> follower;
  auto executor = co_await asio::this_coro::executor;
  if (query->follow) {
    auto followed = service_.FollowEgressLog(match.vm_id, executor);
    if (!followed) {
      co_await responder.Send(ErrorResponse(followed.error()));
      co_return;
    }
    follower = std::move(*followed);
  }
  auto entries = service_.EgressLog(match.vm_id, query->after);
  if (!entries) {
    co_await responder.Send(ErrorResponse(entries.error()));
    co_return;
  }
  std::vector<std::string> replay;
  for (const net::EgressEntry& entry : *entries) replay.push_back(EgressLine(entry));
  auto line_of = [](const net::EgressFollower::Item& item) { return EgressLine(item); };
  co_await StreamNdjson(responder, std::move(replay), std::move(follower), line_of);
}

}  // namespace agentvm::api
