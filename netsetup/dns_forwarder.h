// DnsForwarder: the only resolver a guest may use. The daemon runs it on the
// bridge's gateway address (10.101.0.1:53 by default) and nftables lets
// guests reach nothing else on port 53, so every name lookup of every VM goes
// through here to one upstream resolver the operator chose.
//
// Why a forwarder and not DNAT to the host's resolver: hosts commonly name a
// loopback stub (systemd-resolved's 127.0.0.53) that a guest's packets
// cannot be routed to, while the daemon, running on the host, reaches it.
//
// UDP: each query is checked (12..4096 bytes, a standard query: QR clear,
// opcode QUERY, exactly one question; anything else is dropped: no NOTIFY,
// UPDATE or multi-question tricks reach upstream), gets a fresh random
// query id that no outstanding query holds, and leaves through one
// upstream-facing socket. A reply is accepted only from the upstream endpoint
// and for an outstanding id; it goes back to the guest that asked, with the
// guest's id restored. At most `max_outstanding` queries wait at once (more
// are dropped: a resolver retries), at most `max_outstanding_per_guest` from
// one guest address (so one VM cannot fill the table for all), and each
// waits at most `query_timeout`.
//
// TCP: resolvers fall back to TCP when a UDP answer comes back truncated
// (glibc does; busybox's nslookup never does). Cheap enough to serve: each
// guest connection gets its own upstream connection, so ids cannot collide
// and need no rewriting. Guest-to-upstream bytes are parsed as length-
// prefixed DNS queries and checked like UDP ones; upstream-to-guest bytes are
// copied. Connections are capped and closed when idle.
//
// Domain-filtered VMs (options.policy names a list for the source address):
// only a standard query (opcode QUERY, one question, class IN) for a name on
// the list, of type A, AAAA, CNAME, HTTPS or SVCB, is relayed. Any other
// question is answered REFUSED by the forwarder itself and never sent
// upstream, so query names cannot carry data out; malformed or non-QUERY
// messages are dropped. REFUSED rather than NXDOMAIN: the name may well
// exist, and a resolver that says so is not lying to the agent. The
// addresses of an allowed answer (A records, after CNAMEs) are handed to
// policy->Learn, whose netlink batch the kernel has acknowledged before the
// answer is relayed, so the guest's first connect never races the filter;
// when learning fails the guest gets SERVFAIL. Such VMs get no TCP relay:
// their connections are closed at once (answers to A queries for allowed
// names fit in UDP; a truncated one is not learned from).
//
// Threading: everything runs on the executor given to the constructor (one
// io_context thread); Start/Stop/stats must be called there too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include "common/error.h"

namespace agentvm {
namespace net {
class DnsPolicy;
}  // namespace net

struct DnsForwarderOptions {
  // Where guests send queries: the gateway address, port 53. Port 0 binds an
  // ephemeral port (tests); TCP then listens on the same port number.
  boost::asio::ip::udp::endpoint listen;
  boost::asio::ip::udp::endpoint upstream;
  std::size_t max_outstanding = 4096;
  std::size_t max_outstanding_per_guest = 256;
  std::chrono::milliseconds query_timeout{5000};
  bool serve_tcp = true;
  std::size_t max_tcp_connections = 64;
  std::chrono::milliseconds tcp_idle_timeout{10000};
  // Not owned; must outlive the forwarder. nullptr: every VM as above
  // without a list.
  net::DnsPolicy* policy = nullptr;
};

struct DnsForwarderStats {
  std::uint64_t forwarded = 0;  // UDP queries sent upstream
  std::uint64_t answered = 0;   // UDP replies relayed to a guest
  std::uint64_t dropped = 0;    // malformed, table full, unmatched or unsendable
  std::uint64_t expired = 0;    // queries upstream never answered in time
  std::uint64_t tcp_connections = 0;  // accepted since Start
  std::uint64_t refused = 0;  // answered REFUSED for a domain-filtered VM, never forwarded
  std::uint64_t learned = 0;  // answers whose addresses were learned before relaying
};

class DnsForwarder {
 public:
  DnsForwarder(boost::asio::any_io_executor executor, DnsForwarderOptions options);
  ~DnsForwarder();  // Stop()
  DnsForwarder(const DnsForwarder&) = delete;
  DnsForwarder& operator=(const DnsForwarder&) = delete;

  // Binds the listening sockets and the upstream socket and starts serving.
  // kUnavailable when a bind fails (address not configured, port taken),
  // kConflict on a second call (also after Stop).
  Result<void> Start();
  // Closes every socket; queries in flight are forgotten. Logs the counts.
  // Idempotent.
  void Stop();

  // The bound UDP listening endpoint (the real port when options asked for 0).
  boost::asio::ip::udp::endpoint local_endpoint() const;
  std::uint16_t port() const { return local_endpoint().port(); }
  DnsForwarderStats stats() const;
  // UDP queries waiting for upstream.
  std::size_t outstanding() const;
  std::size_t tcp_connections_open() const;

 private:
  struct State;
  // Shared with the serving coroutines, so none outlives what it touches.
  std::shared_ptr<State> state_;
};

// The first `nameserver` of a resolv.conf, port 53. Loopback addresses
// (127.0.0.53 of systemd-resolved) are returned as they are: the forwarder
// runs on the host and reaches them. kNotFound when the file is missing or
// names no usable server.
Result<boost::asio::ip::udp::endpoint> UpstreamFromResolvConf(
    const std::filesystem::path& path = "/etc/resolv.conf");

}  // namespace agentvm
