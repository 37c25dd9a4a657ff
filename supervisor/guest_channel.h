// GuestChannel: the supervisor's end of the guest control protocol
// (docs/guest-protocol.md) over one connected stream socket, unix
// (virtio-serial via QEMU) or vsock alike. One reader coroutine decodes
// frames and routes them by stream id, so any number of calls (execs, file
// transfers, pings) run concurrently over the one connection.
//
// Threading: everything, including the destructor, runs on the socket's
// executor (one io_context thread), like the rest of the supervisor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>  // boost 1.74's awaitable.hpp uses std::exchange without it

#include "common/error.h"
#include "protocol/exec_types.h"
#include "protocol/messages.h"
#include "supervisor/exec_stream.h"
#include "protocol/identity.h"

namespace agentvm {

// What a guest is told about itself by Configure: network, host name, clock,
// entropy. Plain data from the protocol library; no agent code comes with it.
using GuestIdentity = protocol::GuestIdentity;
using GuestNetwork = protocol::GuestNetwork;

// Entropy Configure sends when the caller gives none.
inline constexpr std::size_t kConfigureEntropyBytes = 64;

// What a guest can make the host hold or spend (docs/security.md). Crossing
// either count closes the channel with a reason that says which.
struct GuestChannelLimits {
  // Bytes queued for the guest and not yet taken by it: a guest that stops
  // reading costs the host no more. Twice the frame limit, so the largest
  // request still fits behind a full one.
  std::size_t max_outbox_bytes = 32 * 1024 * 1024;
  // Malformed frames, or frames no request asked for, from the guest; a
  // sound agent sends none.
  int max_protocol_errors = 16;
  // A guest's frame header; its replies carry a few short fields.
  std::size_t max_header_bytes = 64 * 1024;
};

class GuestChannel {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;

  GuestChannel(Socket socket, std::string vm_id, GuestChannelLimits limits = {});
  // Closes; pending calls complete with kUnavailable. OnClosed's callback is
  // not called from here: whoever destroys the channel knows it is gone.
  ~GuestChannel();
  GuestChannel(const GuestChannel&) = delete;
  GuestChannel& operator=(const GuestChannel&) = delete;

  void Start();  // starts the reader loop
  void Close();
  bool closed() const;
  // Called once when the connection ends (peer gone, read/write error, or
  // Close()); at once if it already has.
  void OnClosed(std::function<void(const Error&)> callback);

  // How long a request may wait for its reply: a file chunk, a shutdown, an
  // exec's "started". Default 30 s.
  void set_request_timeout(std::chrono::milliseconds timeout);
  // An exec with a guest-side timeout gives up on the guest (kTimeout) after
  // timeout + this grace, in case the guest never answers. Default 5 s.
  void set_exec_grace(std::chrono::milliseconds grace);
  // Output of one exec the guest may send ahead of its consumer. Default
  // protocol::kDefaultOutputWindow.
  void set_output_window(std::uint64_t bytes);

  boost::asio::awaitable<Result<void>> Ping(std::chrono::milliseconds timeout);
  // Pings every 250 ms until any pong arrives or `deadline` passes (kTimeout).
  // A pong to an earlier ping counts, so a slow guest still becomes ready.
  boost::asio::awaitable<Result<void>> WaitReady(std::chrono::milliseconds deadline);

  // Starts request.argv in the guest and returns once the guest reports it
  // started: the stream then hands out its output, flow controlled (see
  // exec_stream.h), and takes more stdin when request.stream_stdin. Errors
  // before the start: the guest's (kNotFound "exec nope: No such file or
  // directory", ...), kTimeout when the guest does not answer, kUnavailable
  // when the connection ends first. A guest-side timeout is a result
  // (timed_out), not an error.
  boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> StartExec(protocol::ExecRequest request);
  // StartExec, then every chunk of output to `sink` (on the channel's
  // executor; it must not block) until the end. For callers that read all
  // the output at once and need no more stdin.
  boost::asio::awaitable<Result<protocol::ExecResult>> Exec(protocol::ExecRequest request,
                                                            protocol::OutputSink sink);
  // Creates or replaces the file at absolute `path` with `data` and `mode`,
  // sent in 1 MiB chunks.
  boost::asio::awaitable<Result<void>> WriteFile(std::string path, std::string data,
                                                 std::uint32_t mode);
  // The whole file at absolute `path`; kTooLarge when it has more than
  // `max_bytes`.
  boost::asio::awaitable<Result<std::string>> ReadFile(std::string path, std::size_t max_bytes);
  // One piece of a file (at most a frame's worth): `data` written at
  // `offset` (`truncate` first empties or creates the file), or at most
  // `length` bytes read from `offset`, with the file's size and mode.
  boost::asio::awaitable<Result<void>> WriteFileChunk(std::string path, std::string data, std::uint64_t offset,
                                                      bool truncate, std::uint32_t mode);
  boost::asio::awaitable<Result<protocol::FileChunk>> ReadFileChunk(std::string path, std::uint64_t offset,
                                                                    std::uint64_t length);
  // Gives the guest its identity (after a snapshot restore, or any boot).
  // An unset time_unix_ns becomes the host's wall clock at sending, an empty
  // entropy kConfigureEntropyBytes from getrandom(). A bad field fails with
  // kInvalidArgument before anything is sent; the guest's own refusal or a
  // failed step comes back as its error ("configure: network: ip ...").
  boost::asio::awaitable<Result<void>> Configure(GuestIdentity identity,
                                                 std::chrono::milliseconds timeout);
  // Asks the agent to sync and power the guest off; completes on its "ok".
  boost::asio::awaitable<Result<void>> Shutdown(std::chrono::milliseconds timeout);

 private:
  struct State;
  // The file calls, on the state alone: a whole-file call goes on safely
  // across its chunks if the GuestChannel is destroyed meanwhile.
  static boost::asio::awaitable<Result<void>> WriteChunk(std::shared_ptr<State> self, std::string path,
                                                         std::string data, std::uint64_t offset, bool truncate,
                                                         std::uint32_t mode);
  static boost::asio::awaitable<Result<protocol::FileChunk>> ReadChunk(std::shared_ptr<State> self,
                                                                       std::string path, std::uint64_t offset,
                                                                       std::uint64_t length);
  // Shared with the reader and writer coroutines and every call in flight,
  // so none of them touches a destroyed GuestChannel.
  std::shared_ptr<State> state_;
};

}  // namespace agentvm
