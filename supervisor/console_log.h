// ConsoleLog: the guest's serial console, drained by the daemon. QEMU's
// serial chardev is one end of a socketpair the daemon makes (Connect());
// the daemon reads the other end as fast as the guest writes and keeps
//   - the last kConsoleRingBytes in memory, served by `agentvm logs`, and
//   - a file capped at kConsoleFileBytes on disk: console.log takes half of
//     it, then becomes console.log.1 (replacing the older one) and a new
//     console.log starts.
// So a guest that writes its console without end costs the host neither
// memory nor the run dir's tmpfs beyond those caps, and QEMU never blocks on
// a console nobody reads. Because the daemon opens the endpoint and hands
// it to QEMU as an inherited fd, a confined QEMU needs no path for it.
//
// Threading: everything on the executor's one thread, like the Vm that owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>

#include "common/error.h"
#include "common/unique_fd.h"

namespace agentvm {

inline constexpr std::size_t kConsoleRingBytes = 128 * 1024;
inline constexpr std::uint64_t kConsoleFileBytes = 1024 * 1024;

class ConsoleLog {
 public:
  ConsoleLog(boost::asio::any_io_executor executor, std::filesystem::path file, std::string vm_id,
             std::size_t ring_bytes = kConsoleRingBytes, std::uint64_t file_bytes = kConsoleFileBytes);
  // Stops draining; the files stay.
  ~ConsoleLog();
  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;

  // A new endpoint for QEMU's serial chardev (`-chardev socket,fd=N`); the
  // daemon drains its peer from now on (a relaunched QEMU gets a new one,
  // the ring and files go on). The caller closes its copy once QEMU has it.
  Result<UniqueFd> Connect();

  // The last `max_bytes` the guest wrote (at most the ring's size).
  std::string Tail(std::size_t max_bytes) const;
  // Everything the guest wrote, counted.
  std::uint64_t total_bytes() const;
  // Where the older half of the file goes when the current one is full.
  static std::filesystem::path Rotated(const std::filesystem::path& file);

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the drain coroutine
};

}  // namespace agentvm
