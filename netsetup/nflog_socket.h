// NflogSocket: the daemon's end of nftables' `log group N` (nfnetlink_log),
// where refused connections come from (docs/network.md, "The egress log").
// One netlink socket bound to the group in copy-packet mode with a small copy
// range (headers only, kRefusedLogSnaplen); each packet message is parsed
// (ParseNflogMessage) and handed to the handler on the executor's thread.
//
// Bounded: the socket's receive buffer is capped (kNflogReceiveBufferBytes),
// so when the daemon reads slower than the kernel logs, the kernel drops
// messages and the next read says ENOBUFS: counted, never fatal. Each
// datagram is its own completion on the executor, so a busy log never holds
// the daemon's thread for more than one.
// The rate itself is capped in nftables (FirewallConfig::refused_log_group).
//
// The group is per network namespace and has one listener: Open fails
// (kConflict) when another process holds it. Closing the socket unbinds it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "common/error.h"
#include "netsetup/nflog_message.h"

namespace agentvm::net {

inline constexpr int kNflogReceiveBufferBytes = 256 * 1024;

struct NflogStats {
  std::uint64_t packets = 0;    // messages parsed and handed on
  std::uint64_t overruns = 0;   // ENOBUFS: the kernel dropped messages we were too slow for
  std::uint64_t malformed = 0;  // messages ParseNflogMessage refused
};

class NflogSocket {
 public:
  using Handler = std::function<void(const NflogPacket&)>;

  // Binds `group` in the calling thread's network namespace and starts
  // reading on `executor`.
  static Result<std::unique_ptr<NflogSocket>> Open(boost::asio::any_io_executor executor, std::uint16_t group,
                                                   Handler handler);
  ~NflogSocket();
  NflogSocket(const NflogSocket&) = delete;
  NflogSocket& operator=(const NflogSocket&) = delete;

  const NflogStats& stats() const;

 private:
  struct State;
  explicit NflogSocket(std::shared_ptr<State> state);
  // Shared with the pending wait, which outlives the socket by one aborted
  // completion after the destructor closed the descriptor.
  std::shared_ptr<State> state_;
};

}  // namespace agentvm::net
