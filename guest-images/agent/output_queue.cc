#include "guest-images/agent/output_queue.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace agentvm::guest {

void OutputQueue::Push(const protocol::Frame& frame) {
  PushChunk(Chunk{frame.stream, protocol::EncodeFrame(frame)});
}

void OutputQueue::PushWithHeadroom(const protocol::Frame& frame, std::string buffer) {
  // The head as EncodeFrame() writes it for an empty payload; the prefix's
  // second big-endian word (frame.h) then becomes the real payload length.
  std::string head = protocol::EncodeFrame(frame);
  const std::size_t payload = buffer.size() - std::min(buffer.size(), kHeadroom);
  for (int i = 0; i < 4; ++i) head[4 + i] = static_cast<char>((payload >> (8 * (3 - i))) & 0xff);
  if (head.size() > kHeadroom || buffer.size() < kHeadroom) {
    // Never for the frames that use this; correct anyway, with a copy.
    head.append(buffer, std::min(buffer.size(), kHeadroom));
    return PushChunk(Chunk{frame.stream, std::move(head)});
  }
  const std::size_t start = kHeadroom - head.size();
  buffer.replace(start, head.size(), head);
  PushChunk(Chunk{frame.stream, std::move(buffer), start});
}

void OutputQueue::PushChunk(Chunk chunk) {
  Account(chunk.stream, static_cast<std::ptrdiff_t>(chunk.bytes.size() - chunk.sent));
  chunks_.push_back(std::move(chunk));
}

std::size_t OutputQueue::stream_bytes(std::uint32_t stream) const {
  auto it = per_stream_.find(stream);
  return it == per_stream_.end() ? 0 : it->second;
}

void OutputQueue::Account(std::uint32_t stream, std::ptrdiff_t delta) {
  total_ += delta;
  std::size_t& n = per_stream_[stream];
  n += delta;
  if (n == 0) per_stream_.erase(stream);
}

int OutputQueue::Flush(int fd) {
  constexpr int kMaxIov = 32;
  while (!chunks_.empty()) {
    iovec iov[kMaxIov];
    int count = 0;
    for (auto it = chunks_.begin(); it != chunks_.end() && count < kMaxIov; ++it, ++count) {
      iov[count].iov_base = it->bytes.data() + it->sent;
      iov[count].iov_len = it->bytes.size() - it->sent;
    }
    count = CoalesceSmall(iov, count);
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return errno;
    }
    auto left = static_cast<std::size_t>(n);
    while (left > 0) {
      Chunk& front = chunks_.front();
      std::size_t take = std::min(left, front.bytes.size() - front.sent);
      front.sent += take;
      left -= take;
      Account(front.stream, -static_cast<std::ptrdiff_t>(take));
      if (front.sent == front.bytes.size()) chunks_.pop_front();
    }
  }
  return 0;
}

int OutputQueue::CoalesceSmall(iovec* iov, int count) {
  // A virtio port takes a writev element by element, each a write of its
  // own: a buffer on the ring and a notification of the host, which under
  // TCG costs more than copying a few small frames ("started" and "exit",
  // replies) into one.
  constexpr std::size_t kSmallFrame = 4096;
  constexpr std::size_t kMaxCoalesced = 32 * 1024;  // what a port takes per write
  int small = 0;
  std::size_t bytes = 0;
  while (small < count && iov[small].iov_len <= kSmallFrame && bytes + iov[small].iov_len <= kMaxCoalesced) {
    bytes += iov[small].iov_len;
    ++small;
  }
  if (small < 2) return count;
  coalesced_.clear();
  for (int i = 0; i < small; ++i) coalesced_.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  iov[0] = iovec{coalesced_.data(), coalesced_.size()};
  for (int i = small; i < count; ++i) iov[i - small + 1] = iov[i];
  return count - small + 1;
}

void OutputQueue::Clear() {
  chunks_.clear();
  per_stream_.clear();
  total_ = 0;
}

}  // namespace agentvm::guest
