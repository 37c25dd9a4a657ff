// FollowQueue<T>: what one follower of a live log (the daemon's events, a
// VM's egress log) has not read yet. The log pushes; the follower's
// coroutine takes them in order. At most `capacity` items wait: a follower
// that falls that far behind is not waited for and not cut off; the items
// that do not fit are dropped and, in their place, it gets one Gap with
// their count (and the first of them, for its time). It can replay the gap
// from the log's ring by sequence number. The log never slows down, and
// never holds more than `capacity` + 1 items, for a slow reader.
//
// Single-threaded (the daemon's io_context thread), like Notifier. The log
// keeps its followers as weak_ptrs and closes the ones still held when it
// ends, which ends their streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it
#include <variant>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/notifier.h"

namespace agentvm {

template <typename T>
class FollowQueue {
 public:
  struct Gap {
    std::uint64_t count = 0;
    T first;
  };
  using Item = std::variant<T, Gap>;

  FollowQueue(boost::asio::any_io_executor executor, std::size_t capacity)
      : capacity_(capacity < 1 ? 1 : capacity), ready_(std::move(executor)) {}

  // The log's side.
  void Push(const T& item) {
    if (closed_) return;
    if (queue_.size() < capacity_) {
      queue_.push_back(item);
    } else if (auto* gap = std::get_if<Gap>(&queue_.back())) {
      ++gap->count;  // already behind: the gap counts one more
    } else {
      queue_.push_back(Gap{.count = 1, .first = item});  // the one entry beyond the bound
    }
    ready_.Notify();
  }
  void Close() {
    closed_ = true;
    ready_.Notify();
  }

  // The next item once there is one; nullopt at `deadline` or once closed
  // (closed() then says which).
  boost::asio::awaitable<std::optional<Item>> NextUntil(Notifier::Clock::time_point deadline) {
    while (queue_.empty() && !closed_) {
      const bool woken = co_await ready_.WaitUntil(deadline);
      if (!woken) break;
    }
    if (queue_.empty() || closed_) co_return std::nullopt;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    co_return item;
  }
  bool closed() const { return closed_; }
  std::size_t size() const { return queue_.size(); }

 private:
  std::size_t capacity_;
  std::deque<Item> queue_;
  Notifier ready_;
  bool closed_ = false;
};

}  // namespace agentvm
