// Vm::QueryBlockStats: the drives' counters for GET /metrics, asked of QEMU
// at scrape time.
#include "qmp/qmp_client.h"
#include "supervisor/vm.h"

namespace agentvm {

boost::asio::awaitable<Result<std::vector<BlockIo>>> Vm::QueryBlockStats(std::chrono::milliseconds timeout) {
  // Only QEMU is asked: a VM whose guest channel failed still has disks.
  if (state_ != VmState::kRunning) co_return Fail(StateConflict());
  if (!qmp_) co_return Fail(ErrorCode::kUnavailable, "vm " + spec_.id + " has no QMP connection");
  // Execute's awaitable does not refer to the client, so a VM that goes
  // (and drops qmp_) while this waits only makes it fail.
  auto reply = co_await qmp_->Execute("query-blockstats", nullptr, timeout);
  if (!reply) co_return Fail(reply.error().ToError());
  co_return ParseBlockStats(*reply);
}

}  // namespace agentvm
