// SpawnDetached: starts a coroutine that nobody awaits (a reader loop, a
// background build, a drain). Asio's `detached` completion drops the
// exception such a coroutine ends with; this logs it, naming the work, so a
// bug in background work is never silent.
#pragma once

#include <exception>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>

#include "common/logging.h"

namespace agentvm {

template <class Executor>
void SpawnDetached(const Executor& executor, boost::asio::awaitable<void> work, std::string what) {
  boost::asio::co_spawn(executor, std::move(work), [what = std::move(what)](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      Logger("async")->error("{} ended with an exception: {}", what, e.what());
    } catch (...) {
      Logger("async")->error("{} ended with an unknown exception", what);
    }
  });
}

}  // namespace agentvm
