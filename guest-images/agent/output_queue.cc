#include "guest-images/agent/output_queue.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace agentvm::guest {

void OutputQueue::Push(const protocol::Frame& frame) {
  Chunk chunk{frame.stream, protocol::EncodeFrame(frame)};
  Account(chunk.stream, static_cast<std::ptrdiff_t>(chunk.bytes.size()));
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

void OutputQueue::Clear() {
  chunks_.clear();
  per_stream_.clear();
  total_ = 0;
}

}  // namespace agentvm::guest
