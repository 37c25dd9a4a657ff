// EventLog: what happened to the daemon's VMs, in order, the `docker events`
// habit: created, started, exec_started, exec_finished, stopped, failed,
// removed, snapshot_saved, snapshot_restored, adopted (docs/operations.md).
//
// The log keeps the last `ring_size` events, each with a sequence number
// that only grows, so a client can replay what it missed (`since`). A
// subscriber gets every later event that passes its filter through a queue
// of at most `queue_size` events. A subscriber that falls that far behind
// is not waited for and not cut off: the events that do not fit are dropped
// and, in their place, it gets one marker event of type "dropped" with
// their "count". It keeps its connection and can replay the gap from the
// ring by sequence number. The daemon never slows down for a slow reader.
//
// Single-threaded (the daemon's io_context thread). The log holds its
// subscriptions weakly: a subscription ends when its holder drops it, and
// the log's destructor closes the ones still held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "common/follow_queue.h"
#include "common/notifier.h"

namespace agentvm {

struct Event {
  std::uint64_t seq = 0;     // 0 only for a "dropped" marker
  std::int64_t time_ms = 0;  // unix milliseconds
  std::string type;
  std::string vm;                 // empty for events of no one VM
  nlohmann::ordered_json fields;  // the type's own details: an object
};

inline constexpr char kDroppedEventType[] = "dropped";

// One NDJSON line's object: {"seq", "time" (RFC 3339 UTC), "type", "vm",
// then the fields}; a marker has no seq and no vm.
nlohmann::ordered_json EventToJson(const Event& event);

// Empty members match everything; an event matches one of `types`.
struct EventFilter {
  std::string vm;
  std::vector<std::string> types;
  bool Matches(const Event& event) const;
};

class EventSubscription {
 public:
  EventSubscription(boost::asio::any_io_executor executor, EventFilter filter, std::size_t queue_size);

  // The next event (or "dropped" marker) once there is one; nullopt at
  // `deadline` or once closed (closed() then says which).
  boost::asio::awaitable<std::optional<Event>> NextUntil(Notifier::Clock::time_point deadline);
  bool closed() const { return queue_.closed(); }

  // The log's side.
  void Offer(const Event& event);
  void Close() { queue_.Close(); }

 private:
  EventFilter filter_;
  FollowQueue<Event> queue_;  // a gap becomes a "dropped" marker when read
};

class EventLog {
 public:
  static constexpr std::size_t kDefaultRingSize = 1000;
  static constexpr std::size_t kDefaultQueueSize = 256;

  explicit EventLog(std::size_t ring_size = kDefaultRingSize, std::size_t queue_size = kDefaultQueueSize);
  ~EventLog();  // closes every subscription still held
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Records an event now, with the next sequence number, and offers it to
  // every subscriber.
  const Event& Publish(std::string type, std::string vm, nlohmann::ordered_json fields = nlohmann::ordered_json::object());

  // The events still in the ring with seq > `after` that pass `filter`, oldest first.
  std::vector<Event> Since(std::uint64_t after, const EventFilter& filter) const;

  // Every event published from now on that passes `filter`. Taken together
  // with Since() (no co_await between), nothing is missed or seen twice.
  std::shared_ptr<EventSubscription> Subscribe(boost::asio::any_io_executor executor, EventFilter filter);

  // Called with each event as it is published, before any subscriber: for
  // the audit log, the durable record, which must see every event (a
  // subscriber that falls behind may miss some). One recorder at a time; an
  // empty function removes it.
  void SetRecorder(std::function<void(const Event&)> recorder) { recorder_ = std::move(recorder); }

  std::uint64_t last_seq() const { return next_seq_ - 1; }

 private:
  std::size_t ring_size_;
  std::size_t queue_size_;
  std::deque<Event> ring_;
  std::uint64_t next_seq_ = 1;
  std::vector<std::weak_ptr<EventSubscription>> subscribers_;
  std::function<void(const Event&)> recorder_;
};

}  // namespace agentvm
