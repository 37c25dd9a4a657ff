#include "supervisor/event_log.h"

#include <algorithm>

#include "common/rfc3339.h"

namespace agentvm {

nlohmann::ordered_json EventToJson(const Event& event) {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (event.seq != 0) json["seq"] = event.seq;
  json["time"] = FormatRfc3339Utc(event.time_ms);
  json["type"] = event.type;
  if (!event.vm.empty()) json["vm"] = event.vm;
  if (event.fields.is_object()) {
    for (const auto& [key, value] : event.fields.items()) json[key] = value;
  }
  return json;
}

bool EventFilter::Matches(const Event& event) const {
  return (vm.empty() || vm == event.vm) &&
         (types.empty() || std::find(types.begin(), types.end(), event.type) != types.end());
}

EventSubscription::EventSubscription(boost::asio::any_io_executor executor, EventFilter filter,
                                     std::size_t queue_size)
    : filter_(std::move(filter)), queue_(std::move(executor), queue_size) {}

void EventSubscription::Offer(const Event& event) {
  if (filter_.Matches(event)) queue_.Push(event);
}

boost::asio::awaitable<std::optional<Event>> EventSubscription::NextUntil(Notifier::Clock::time_point deadline) {
  auto item = co_await queue_.NextUntil(deadline);
  if (!item) co_return std::nullopt;
  if (auto* event = std::get_if<Event>(&*item)) co_return std::move(*event);
  const auto& gap = std::get<FollowQueue<Event>::Gap>(*item);
  Event marker{.seq = 0, .time_ms = gap.first.time_ms, .type = kDroppedEventType, .vm = "", .fields = {}};
  marker.fields["count"] = gap.count;
  co_return marker;
}

EventLog::EventLog(std::size_t ring_size, std::size_t queue_size)
    : ring_size_(std::max<std::size_t>(ring_size, 1)), queue_size_(queue_size) {}

EventLog::~EventLog() {
  for (auto& weak : subscribers_) {
    if (auto subscriber = weak.lock()) subscriber->Close();
  }
}

const Event& EventLog::Publish(std::string type, std::string vm, nlohmann::ordered_json fields) {
  if (ring_.size() == ring_size_) ring_.pop_front();
  ring_.push_back(Event{.seq = next_seq_++,
                        .time_ms = UnixMillisNow(),
                        .type = std::move(type),
                        .vm = std::move(vm),
                        .fields = std::move(fields)});
  if (recorder_) recorder_(ring_.back());
  std::erase_if(subscribers_, [](const std::weak_ptr<EventSubscription>& weak) { return weak.expired(); });
  for (auto& weak : subscribers_) weak.lock()->Offer(ring_.back());
  return ring_.back();
}

std::vector<Event> EventLog::Since(std::uint64_t after, const EventFilter& filter) const {
  std::vector<Event> events;
  for (const Event& event : ring_) {
    if (event.seq > after && filter.Matches(event)) events.push_back(event);
  }
  return events;
}

std::shared_ptr<EventSubscription> EventLog::Subscribe(boost::asio::any_io_executor executor, EventFilter filter) {
  auto subscription = std::make_shared<EventSubscription>(std::move(executor), std::move(filter), queue_size_);
  subscribers_.push_back(subscription);
  return subscription;
}

}  // namespace agentvm
