#include "bench/exec_rtt.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "bench/http_client.h"
#include "bench/stats.h"

namespace agentvm::bench {
namespace {

namespace asio = boost::asio;

constexpr std::chrono::milliseconds kCallTimeout{10000};

struct Options {
  std::string socket;
  std::string vm;
  int runs = 20;
  int warmups = 0;
  bool on_request = false;  // one round trip per line read from stdin
};

// One round trip; its time, or nothing (and the reason on stderr).
asio::awaitable<std::optional<Clock::duration>> RoundTrip(const Options& options) {
  const std::string target = "/v1/vms/" + options.vm + "/exec";
  const std::string body = R"({"argv":["/bin/true"]})";
  const auto start = Clock::now();
  auto reply = co_await HttpCall(options.socket, "POST", target, body, kCallTimeout);
  const auto elapsed = Clock::now() - start;
  if (!reply) {
    std::cerr << "agentvm-bench exec-rtt: " << reply.error().message << "\n";
    co_return std::nullopt;
  }
  if (auto ok = CheckExecSucceeded(*reply); !ok) {
    std::cerr << "agentvm-bench exec-rtt: " << ok.error().message << "\n";
    co_return std::nullopt;
  }
  co_return elapsed;
}

// Runs one round trip on `io` and prints its seconds; false if it failed.
bool TimeOne(asio::io_context& io, const Options& options, bool print) {
  std::optional<Clock::duration> elapsed;
  asio::co_spawn(io, RoundTrip(options), [&](std::exception_ptr error, std::optional<Clock::duration> result) {
    if (!error) elapsed = result;
  });
  io.restart();
  io.run();
  if (!elapsed) return false;
  if (print) {
    std::printf("%.9f\n", Seconds(*elapsed).count());
    std::fflush(stdout);
  }
  return true;
}

}  // namespace

int ExecRttMain(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--socket" && has_value) {
      options.socket = argv[++i];
    } else if (arg == "--vm" && has_value) {
      options.vm = argv[++i];
    } else if (arg == "--runs" && has_value) {
      options.runs = std::atoi(argv[++i]);
    } else if (arg == "--warmups" && has_value) {
      options.warmups = std::atoi(argv[++i]);
    } else if (arg == "--on-request") {
      options.on_request = true;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "agentvm-bench exec-rtt --socket PATH --vm ID [--runs N (20)] [--warmups N (0)] [--on-request]:\n"
                   "time exec round trips of /bin/true through the API (one fresh connection each) and print each\n"
                   "in seconds; with --on-request, one round trip per line read from stdin, until its end\n";
      return 0;
    } else {
      std::cerr << "agentvm-bench exec-rtt: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (options.socket.empty() || options.vm.empty() || options.runs < 1 || options.warmups < 0) {
    std::cerr << "agentvm-bench exec-rtt: need --socket, --vm and --runs of at least 1\n";
    return 2;
  }
  asio::io_context io;
  if (options.on_request) {
    for (std::string line; std::getline(std::cin, line);) {
      if (!TimeOne(io, options, true)) return 1;
    }
    return 0;
  }
  for (int i = 0; i < options.warmups + options.runs; ++i) {
    if (!TimeOne(io, options, i >= options.warmups)) return 1;
  }
  return 0;
}

}  // namespace agentvm::bench
