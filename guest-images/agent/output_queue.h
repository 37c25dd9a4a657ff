// Encoded frames waiting to go to the host, in order, with the bytes still
// queued per stream so the agent can stop reading a chatty process's pipes
// (backpressure) instead of buffering without bound.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "protocol/frame.h"

namespace agentvm::guest {

class OutputQueue {
 public:
  // Spare bytes a PushWithHeadroom() buffer starts with: room for the
  // prefix and the header of a stdout/stderr or data frame.
  static constexpr std::size_t kHeadroom = 128;

  void Push(const protocol::Frame& frame);
  // `frame` has no payload; `buffer` is kHeadroom spare bytes, then the
  // payload. The prefix and header are encoded into the spare bytes, so a
  // payload read straight into the buffer is never copied again on its way
  // to the host: under TCG each copy of bulk data costs the guest's scarce
  // CPU.
  void PushWithHeadroom(const protocol::Frame& frame, std::string buffer);

  bool empty() const { return chunks_.empty(); }
  std::size_t total_bytes() const { return total_; }
  std::size_t stream_bytes(std::uint32_t stream) const;

  // Writes what `fd` accepts without blocking. Returns 0 when everything
  // possible was written (queue empty or EAGAIN), else the errno of a failed
  // write (the connection is gone).
  int Flush(int fd);

  void Clear();

 private:
  struct Chunk {
    std::uint32_t stream;
    std::string bytes;
    std::size_t sent = 0;  // bytes[0, sent) are written, or were never part of the frame
  };
  void PushChunk(Chunk chunk);
  // Replaces leading small elements of `iov` by one copy of them in
  // coalesced_; returns the new count.
  int CoalesceSmall(iovec* iov, int count);
  void Account(std::uint32_t stream, std::ptrdiff_t delta);

  std::deque<Chunk> chunks_;
  std::unordered_map<std::uint32_t, std::size_t> per_stream_;
  std::size_t total_ = 0;
  std::string coalesced_;
};

}  // namespace agentvm::guest
