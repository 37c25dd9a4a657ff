// WriteBehind: a file sent to a guest in consecutive pieces, with up to
// `depth` pieces in flight at once. One at a time leaves the channel idle
// while the guest writes each piece and answers; with two, the next piece
// crosses the channel meanwhile. The pieces go out in order on one channel,
// which keeps that order, so the first (truncating) one is written first.
//
// Single-threaded, like Pending: every call on the owner's executor. Writes
// still in flight when the owner goes away finish on their own.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "common/pending.h"
#include "common/spawn.h"

namespace agentvm {

class WriteBehind {
 public:
  // Writes one piece at `offset`; `truncate` (the first piece) creates or
  // empties the file. It bounds its own time (the guest channel's deadline).
  using WriteFn =
      std::function<boost::asio::awaitable<Result<void>>(std::string piece, std::uint64_t offset, bool truncate)>;

  WriteBehind(boost::asio::any_io_executor executor, WriteFn write, std::string what, std::size_t depth = 2)
      : executor_(std::move(executor)), write_(std::move(write)), what_(std::move(what)), depth_(depth) {}

  // Sends the next piece, once fewer than `depth` are in flight. After a
  // failure nothing more is sent, and this returns that failure.
  boost::asio::awaitable<Result<void>> Write(std::string piece) {
    if (in_flight_.size() >= depth_) co_await SettleOldest();
    if (!failure_) {
      auto done = std::make_shared<Pending<Result<void>>>(executor_);
      const std::uint64_t offset = offset_;
      const bool truncate = !started_;
      offset_ += piece.size();
      started_ = true;
      SpawnDetached(
          executor_,
          [write = write_, piece = std::move(piece), offset, truncate, done]() mutable -> boost::asio::awaitable<void> {
            auto written = co_await write(std::move(piece), offset, truncate);
            done->Set(std::move(written));
          },
          what_);
      in_flight_.push_back(std::move(done));
    }
    co_return Outcome();
  }

  // Waits for every piece in flight: the first failure, or success.
  boost::asio::awaitable<Result<void>> Finish() {
    while (!in_flight_.empty()) co_await SettleOldest();
    co_return Outcome();
  }

 private:
  // A generous bound only: each write has the guest channel's own deadline.
  static constexpr std::chrono::hours kNoDeadline{24 * 365};

  boost::asio::awaitable<void> SettleOldest() {
    std::shared_ptr<Pending<Result<void>>> oldest = std::move(in_flight_.front());
    in_flight_.pop_front();
    std::optional<Result<void>> written = co_await oldest->Wait(kNoDeadline);
    if (failure_) co_return;
    if (!written) {
      failure_ = Error{ErrorCode::kTimeout, what_ + ": a write never finished"};
    } else if (!*written) {
      failure_ = written->error();
    }
  }

  Result<void> Outcome() const {
    if (failure_) return Fail(*failure_);
    return {};
  }

  boost::asio::any_io_executor executor_;
  WriteFn write_;
  std::string what_;
  std::size_t depth_;
  std::deque<std::shared_ptr<Pending<Result<void>>>> in_flight_;
  std::uint64_t offset_ = 0;
  bool started_ = false;
  std::optional<Error> failure_;
};

}  // namespace agentvm
