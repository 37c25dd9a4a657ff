#include "supervisor/console_log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <optional>

#include "common/logging.h"
#include "common/spawn.h"

namespace agentvm {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;

constexpr std::size_t kReadChunkBytes = 16 * 1024;

}  // namespace

struct ConsoleLog::State : std::enable_shared_from_this<ConsoleLog::State> {
  asio::any_io_executor executor;
  std::filesystem::path file;
  std::string vm_id;
  std::size_t ring_bytes;
  std::uint64_t file_half_bytes;
  // The ring: `ring` grows to ring_bytes, then `ring_start` marks its oldest byte.
  std::string ring;
  std::size_t ring_start = 0;
  std::uint64_t total = 0;
  UniqueFd out;  // console.log, appended to
  std::uint64_t out_bytes = 0;
  bool file_failed = false;
  std::optional<Socket> socket;  // the daemon's end, while QEMU has the other
  std::uint64_t generation = 0;  // which socket the drain coroutine reads

  void AppendToRing(std::string_view data) {
    if (data.size() >= ring_bytes) {
      ring.assign(data.substr(data.size() - ring_bytes));
      ring_start = 0;
      return;
    }
    if (ring.size() < ring_bytes) {
      const std::size_t fits = std::min(ring_bytes - ring.size(), data.size());
      ring.append(data.substr(0, fits));
      data.remove_prefix(fits);
    }
    while (!data.empty()) {
      const std::size_t n = std::min(ring_bytes - ring_start, data.size());
      ring.replace(ring_start, n, data.substr(0, n));
      ring_start = (ring_start + n) % ring_bytes;
      data.remove_prefix(n);
    }
  }

  void AppendToFile(std::string_view data) {
    while (!data.empty() && !file_failed) {
      if (!out.valid() || out_bytes >= file_half_bytes) {
        if (out.valid()) {
          out.reset();
          std::error_code ec;
          std::filesystem::rename(file, Rotated(file), ec);
        }
        out.reset(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
        out_bytes = 0;
        if (!out.valid()) return Fail("open", errno);
      }
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), file_half_bytes - out_bytes));
      ssize_t written = ::write(out.get(), data.data(), n);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) return Fail("write", errno);
      out_bytes += static_cast<std::uint64_t>(written);
      data.remove_prefix(static_cast<std::size_t>(written));
    }
  }

  // The ring goes on without the file; said once.
  void Fail(const char* what, int error) {
    file_failed = true;
    out.reset();
    Logger("vm")->warn("{}: console log {} {}: {}; keeping only the last {} bytes in memory", vm_id, what,
                       file.string(), std::strerror(error), ring_bytes);
  }

  static asio::awaitable<void> Drain(std::shared_ptr<State> self, std::uint64_t generation) {
    std::string buffer(kReadChunkBytes, '\0');
    while (self->generation == generation && self->socket) {
      boost::system::error_code ec;
      const std::size_t n = co_await self->socket->async_read_some(asio::buffer(buffer),
                                                                  asio::redirect_error(asio::use_awaitable, ec));
      if (self->generation != generation) break;  // a newer QEMU's console took over
      const std::string_view data(buffer.data(), n);
      self->total += n;
      self->AppendToRing(data);
      self->AppendToFile(data);
      if (ec) break;  // QEMU gone (eof) or the log closed
    }
  }
};

ConsoleLog::ConsoleLog(asio::any_io_executor executor, std::filesystem::path file, std::string vm_id,
                       std::size_t ring_bytes, std::uint64_t file_bytes)
    : state_(std::make_shared<State>()) {
  state_->executor = std::move(executor);
  state_->file = std::move(file);
  state_->vm_id = std::move(vm_id);
  state_->ring_bytes = std::max<std::size_t>(ring_bytes, 1);
  state_->file_half_bytes = std::max<std::uint64_t>(file_bytes / 2, 1);
}

ConsoleLog::~ConsoleLog() {
  ++state_->generation;
  if (state_->socket) {
    boost::system::error_code ignored;
    state_->socket->close(ignored);
  }
}

Result<UniqueFd> ConsoleLog::Connect() {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    return Fail(ErrnoError("console socketpair", errno));
  }
  // Not shut down for writing, though the daemon never writes: QEMU's
  // chardev takes an end of input as the console being disconnected.
  UniqueFd qemu_end(ends[1]);
  const std::uint64_t generation = ++state_->generation;
  if (state_->socket) {
    boost::system::error_code ignored;
    state_->socket->close(ignored);
  }
  state_->socket.emplace(state_->executor, asio::local::stream_protocol(), ends[0]);
  SpawnDetached(state_->executor, State::Drain(state_, generation), "console drain", Logger("vm"));
  return qemu_end;
}

std::string ConsoleLog::Tail(std::size_t max_bytes) const {
  const State& s = *state_;
  std::string ordered = s.ring.substr(s.ring_start) + s.ring.substr(0, s.ring_start);
  if (ordered.size() > max_bytes) ordered.erase(0, ordered.size() - max_bytes);
  return ordered;
}

std::uint64_t ConsoleLog::total_bytes() const { return state_->total; }

std::filesystem::path ConsoleLog::Rotated(const std::filesystem::path& file) {
  return file.string() + ".1";
}

}  // namespace agentvm
