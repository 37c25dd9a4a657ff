// write_file and read_file as the agent serves them: one chunk per request,
// plain blocking I/O on local files (fast next to the channel's latency).
// Both refuse relative paths and anything but regular files, so a request
// can never block the agent on a FIFO or a device.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

#include "protocol/messages.h"

namespace agentvm::guest {

template <class T>
using AgentResult = std::expected<T, protocol::ErrorReply>;

// Protocol error code for an errno (ENOENT -> not_found, ...).
std::string_view CodeForErrno(int err);

// Writes `data` at request.offset (after truncating when asked) and returns
// the file's size afterwards. request.mode, when set, is applied to the file.
AgentResult<std::uint64_t> WriteFileChunk(const protocol::WriteFileRequest& request,
                                          std::string_view data);

struct FileChunk {
  protocol::FileData info;
  std::string bytes;  // `headroom` spare bytes, then the file's
};

// Reads at most min(request.length, kMaxReadLength) bytes at request.offset,
// after `headroom` spare bytes (room for the reply's frame head, so the
// bytes are not copied again: OutputQueue::PushWithHeadroom).
AgentResult<FileChunk> ReadFileChunk(const protocol::ReadFileRequest& request, std::size_t headroom = 0);

}  // namespace agentvm::guest
