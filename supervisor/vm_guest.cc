// The Vm's work in its guest, through the agent: health pings, exec and
// files. Each needs a running VM; the state machine is in vm.cc.
#include "supervisor/guest_channel.h"
#include "supervisor/vm.h"

namespace agentvm {
namespace {

using std::chrono::milliseconds;

}  // namespace

boost::asio::awaitable<Result<void>> Vm::Ping(milliseconds timeout) {
  if (auto ok = RequireRunning(); !ok) co_return ok;
  const auto self = shared_from_this();
  co_return co_await channel_->Ping(timeout);
}

Result<void> Vm::RequireRunning() const {
  if (state_ == VmState::kRunning && channel_ && !channel_->closed()) return {};
  if (state_ == VmState::kRunning && !channel_error_.empty()) {
    return Fail(ErrorCode::kUnavailable, "vm " + spec_.id + ": guest channel failed: " + channel_error_);
  }
  Error error = StateConflict();
  if (!reason_.empty()) error.message += " (" + reason_ + ")";
  return Fail(std::move(error));
}

boost::asio::awaitable<Result<std::shared_ptr<ExecStream>>> Vm::StartExec(protocol::ExecRequest request) {
  if (auto ok = RequireRunning(); !ok) co_return Fail(ok.error());
  if (request.user.empty()) request.user = spec_.image.default_user;
  const auto self = shared_from_this();
  co_return co_await channel_->StartExec(std::move(request));
}

boost::asio::awaitable<Result<protocol::ExecResult>> Vm::Exec(protocol::ExecRequest request,
                                                             protocol::OutputSink sink) {
  if (auto ok = RequireRunning(); !ok) co_return Fail(ok.error());
  if (request.user.empty()) request.user = spec_.image.default_user;
  const auto self = shared_from_this();
  co_return co_await channel_->Exec(std::move(request), std::move(sink));
}

boost::asio::awaitable<Result<void>> Vm::WriteFileChunk(std::string path, std::string data, std::uint64_t offset,
                                                        bool truncate, std::uint32_t mode) {
  if (auto ok = RequireRunning(); !ok) co_return ok;
  const auto self = shared_from_this();
  co_return co_await channel_->WriteFileChunk(std::move(path), std::move(data), offset, truncate, mode);
}

boost::asio::awaitable<Result<protocol::FileChunk>> Vm::ReadFileChunk(std::string path, std::uint64_t offset) {
  if (auto ok = RequireRunning(); !ok) co_return Fail(ok.error());
  const auto self = shared_from_this();
  co_return co_await channel_->ReadFileChunk(std::move(path), offset, protocol::kFileChunkBytes);
}

}  // namespace agentvm
