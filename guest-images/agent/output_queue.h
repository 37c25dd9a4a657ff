// Encoded frames waiting to go to the host, in order, with the bytes still
// queued per stream so the agent can stop reading a chatty process's pipes
// (backpressure) instead of buffering without bound.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/unique_fd.h"
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
  // A frame whose `bytes` of payload still sit in the pipe `source` (its
  // only reader is the agent, and it holds at least that much): Flush()
  // moves them from the pipe to the channel with splice(), so they are
  // never copied through the agent. `source` is the caller's (stream,
  // which) pipe: no more may be read from it until splicing(key) is false.
  using SpliceKey = std::pair<std::uint32_t, int>;
  void PushSpliced(const protocol::Frame& frame, SpliceKey key, UniqueFd source, std::size_t bytes);
  bool splicing(SpliceKey key) const { return splicing_.contains(key); }

  bool empty() const { return chunks_.empty(); }
  std::size_t total_bytes() const { return total_; }
  std::size_t stream_bytes(std::uint32_t stream) const;

  // Writes what `fd` accepts without blocking. Returns 0 when everything
  // possible was written (queue empty or EAGAIN), else the errno of a failed
  // write (the connection is gone; EIO also when a splice lost bytes it was
  // given, which a virtio port does if it cannot queue them: the frame on
  // the wire is then short, and only a new connection can recover).
  int Flush(int fd);

  void Clear();

 private:
  struct Chunk {
    std::uint32_t stream;
    std::string bytes;
    std::size_t sent = 0;  // bytes[0, sent) are written, or were never part of the frame
    // PushSpliced: the payload, after `bytes`, still in this pipe.
    UniqueFd source;
    std::size_t splice_left = 0;
    SpliceKey key{};
    std::size_t left() const { return bytes.size() - sent + splice_left; }
  };
  // splice() of the front chunk's payload; 0 or an errno as Flush().
  int SpliceFront(int fd, bool* blocked);
  void PushChunk(Chunk chunk);
  // Replaces leading small elements of `iov` by one copy of them in
  // coalesced_; returns the new count.
  int CoalesceSmall(iovec* iov, int count);
  void Account(std::uint32_t stream, std::ptrdiff_t delta);

  std::deque<Chunk> chunks_;
  std::unordered_map<std::uint32_t, std::size_t> per_stream_;
  std::size_t total_ = 0;
  std::string coalesced_;
  std::set<SpliceKey> splicing_;
};

}  // namespace agentvm::guest
