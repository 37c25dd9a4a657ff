// SpawnDetached: starts a coroutine that nobody awaits (a reader loop, a
// background build, a drain). Asio's `detached` completion drops the
// exception such a coroutine ends with; this logs it, naming the work, so a
// bug in background work is never silent.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>

#include "common/logging.h"

namespace agentvm {

// The completion handler: logs an exception to `log` as "<what> ended with
// an exception: ...".
struct LogIfThrew {
  std::string what;
  std::shared_ptr<spdlog::logger> log;

  void operator()(std::exception_ptr error) const {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log->error("{} ended with an exception: {}", what, e.what());
    } catch (...) {
      log->error("{} ended with an unknown exception", what);
    }
  }
};

// `where` is an executor or an io_context. `work` is an awaitable<void>, or
// a function returning one: pass a coroutine lambda itself (not its call)
// so its captures live as long as the coroutine does.
template <class Where, class Work>
void SpawnDetached(Where&& where, Work&& work, std::string what,
                   std::shared_ptr<spdlog::logger> log = Logger("async")) {
  boost::asio::co_spawn(where, std::forward<Work>(work), LogIfThrew{std::move(what), std::move(log)});
}

}  // namespace agentvm
