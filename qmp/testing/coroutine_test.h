// GoogleTest helpers for tests written as Asio coroutines: a runner that
// drives spawned coroutines on one io_context to completion or to a
// deadline (a hung test fails instead of hanging), and CO_ASSERT_* macros,
// since gtest's ASSERT_* `return` does not compile inside a coroutine.
#pragma once

#include <chrono>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#define CO_ASSERT_TRUE(condition)                               \
  if (!(condition)) {                                           \
    ADD_FAILURE() << "CO_ASSERT_TRUE(" #condition ") failed";   \
    co_return;                                                  \
  }

namespace agentvm::qmp::testing {

class CoroutineRunner {
 public:
  boost::asio::io_context& io() { return io_; }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

  // `make_coroutine` is a callable returning awaitable<void>; it is kept
  // alive inside the spawned coroutine, so lambda captures stay valid.
  template <class F>
  void Spawn(F&& make_coroutine) {
    ++spawned_;
    boost::asio::co_spawn(io_, std::forward<F>(make_coroutine), [this](std::exception_ptr error) {
      ++finished_;
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          failures_.push_back(e.what());
        } catch (...) {
          failures_.push_back("unknown exception");
        }
      }
      if (finished_ == spawned_) io_.stop();
    });
  }

  // True when every spawned coroutine finished, without throwing, within
  // `limit`. Background work (a client's reader) may remain; it is not run.
  bool RunFor(std::chrono::milliseconds limit) {
    io_.restart();
    if (finished_ < spawned_) io_.run_for(limit);
    return finished_ == spawned_ && failures_.empty();
  }

  // Runs already queued handlers without waiting (e.g. posted callbacks).
  void Poll() {
    io_.restart();
    io_.poll();
  }

  std::string Describe() const {
    std::string text = std::to_string(finished_) + "/" + std::to_string(spawned_) +
                       " coroutines finished";
    for (const auto& failure : failures_) text += "; exception: " + failure;
    return text;
  }

 private:
  boost::asio::io_context io_;
  int spawned_ = 0;
  int finished_ = 0;
  std::vector<std::string> failures_;
};

}  // namespace agentvm::qmp::testing
