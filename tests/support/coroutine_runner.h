// CoroutineRunner: drives coroutines on a test's io_context from the test's
// own thread until they finish (or a generous wall-clock limit passes), so
// unit tests can call awaitables as if they were blocking functions.
// Header-only: unit test binaries include it without linking the support
// library.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace agentvm::testing {

class CoroutineRunner {
 public:
  explicit CoroutineRunner(boost::asio::io_context& io) : io_(io) {}

  // Starts `task`; its value lands in the returned slot when it finishes.
  template <class T>
  std::shared_ptr<std::optional<T>> Spawn(boost::asio::awaitable<T> task) {
    auto slot = std::make_shared<std::optional<T>>();
    boost::asio::co_spawn(
        io_,
        [slot, task = std::move(task)]() mutable -> boost::asio::awaitable<void> {
          slot->emplace(co_await std::move(task));
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    return slot;
  }

  void RunUntil(const std::function<bool()>& done,
                std::chrono::seconds limit = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_for(std::chrono::milliseconds(5));
    }
  }

  // Runs whatever is ready for `duration`.
  void RunFor(std::chrono::milliseconds duration) {
    auto deadline = std::chrono::steady_clock::now() + duration;
    RunUntil([&] { return std::chrono::steady_clock::now() >= deadline; });
  }

  template <class T>
  T Run(boost::asio::awaitable<T> task) {
    auto slot = Spawn(std::move(task));
    RunUntil([&] { return slot->has_value(); });
    if (!slot->has_value()) throw std::runtime_error("coroutine did not finish");
    return std::move(**slot);
  }

 private:
  boost::asio::io_context& io_;
};

}  // namespace agentvm::testing
