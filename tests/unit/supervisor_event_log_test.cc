// EventLog: sequence numbers, the bounded ring, filters, and what a
// subscriber that falls behind gets (a "dropped" marker at the gap).
#include "supervisor/event_log.h"

#include <chrono>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

namespace agentvm {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> Types(const std::vector<Event>& events) {
  std::vector<std::string> types;
  for (const Event& event : events) types.push_back(event.type);
  return types;
}

// Takes what the subscription holds now, without waiting.
std::vector<Event> Drain(boost::asio::io_context& io, EventSubscription& subscription) {
  std::vector<Event> events;
  for (;;) {
    auto next = boost::asio::co_spawn(io, subscription.NextUntil(std::chrono::steady_clock::now()),
                                      boost::asio::use_future);
    io.restart();
    io.run();
    std::optional<Event> event = next.get();
    if (!event) return events;
    events.push_back(std::move(*event));
  }
}

TEST(EventLogTest, NumbersEventsAndKeepsOnlyTheLastRingSize) {
  EventLog log(/*ring_size=*/3);
  for (const char* type : {"created", "started", "exec_started", "exec_finished", "stopped"}) {
    log.Publish(type, "vm-a");
  }
  EXPECT_EQ(log.last_seq(), 5u);
  auto kept = log.Since(0, {});
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept.front().seq, 3u);
  EXPECT_EQ(Types(kept), (std::vector<std::string>{"exec_started", "exec_finished", "stopped"}));
  EXPECT_EQ(Types(log.Since(4, {})), std::vector<std::string>{"stopped"});
}

TEST(EventLogTest, FiltersByVmAndType) {
  EventLog log;
  log.Publish("created", "vm-a");
  log.Publish("created", "vm-b");
  log.Publish("stopped", "vm-b");
  EXPECT_EQ(log.Since(0, {.vm = "vm-b"}).size(), 2u);
  EXPECT_EQ(log.Since(0, {.vm = "vm-b", .types = {"created"}}).size(), 1u);
  EXPECT_EQ(log.Since(0, {.types = {"removed"}}).size(), 0u);
}

TEST(EventLogTest, JsonLineHasSeqTimeTypeVmAndTheFields) {
  EventLog log;
  const Event& event = log.Publish("exec_finished", "vm-a", {{"exit_code", 3}, {"ms", 12}});
  auto json = EventToJson(event);
  EXPECT_EQ(json["seq"], 1);
  EXPECT_EQ(json["type"], "exec_finished");
  EXPECT_EQ(json["vm"], "vm-a");
  EXPECT_EQ(json["exit_code"], 3);
  EXPECT_EQ(json["ms"], 12);
  EXPECT_EQ(json.begin().key(), "seq");
}

TEST(EventLogTest, ASubscriberGetsLaterEventsThatPassItsFilter) {
  boost::asio::io_context io;
  EventLog log;
  log.Publish("created", "vm-a");
  auto subscription = log.Subscribe(io.get_executor(), {.vm = "vm-a"});
  log.Publish("started", "vm-a");
  log.Publish("started", "vm-b");
  log.Publish("stopped", "vm-a");
  EXPECT_EQ(Types(Drain(io, *subscription)), (std::vector<std::string>{"started", "stopped"}));
}

TEST(EventLogTest, ASlowSubscriberGetsADroppedMarkerAtTheGapAndThenTheNewEvents) {
  boost::asio::io_context io;
  EventLog log(/*ring_size=*/100, /*queue_size=*/2);
  auto subscription = log.Subscribe(io.get_executor(), {});
  for (int i = 0; i < 5; ++i) log.Publish("exec_started", "vm-a");  // 2 fit, 3 dropped
  auto first = Drain(io, *subscription);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].seq, 1u);
  EXPECT_EQ(first[1].seq, 2u);
  EXPECT_EQ(first[2].type, "dropped");
  EXPECT_EQ(first[2].fields["count"], 3);
  EXPECT_EQ(EventToJson(first[2]).contains("seq"), false);
  log.Publish("stopped", "vm-a");
  auto later = Drain(io, *subscription);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].seq, 6u);
  // The gap is still in the ring: a client replays it with since.
  EXPECT_EQ(log.Since(2, {}).size(), 4u);
}

TEST(EventLogTest, DestroyingTheLogClosesItsSubscriptions) {
  boost::asio::io_context io;
  auto log = std::make_unique<EventLog>();
  auto subscription = log->Subscribe(io.get_executor(), {});
  log.reset();
  EXPECT_TRUE(subscription->closed());
  EXPECT_TRUE(Drain(io, *subscription).empty());
}

}  // namespace
}  // namespace agentvm
