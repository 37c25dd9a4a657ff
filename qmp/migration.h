// Saving and restoring a VM's device and memory state through QEMU's
// migration machinery, into or out of a file the daemon opened itself.
//
// QEMU 7.2 has no `file:` URI, and `exec:` runs /bin/sh (which the QEMU
// sandbox forbids), so both directions hand QEMU an fd with `getfd` and use
// the URI `fd:<name>`. The disk is not part of the stream: the caller freezes
// the disk the saved VM ran on and gives the restored VM a fresh overlay over
// it (see supervisor/golden_snapshot_store.h).
#pragma once

#include <chrono>
#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "qmp/qmp_client.h"

namespace agentvm {

// The name the fd is registered under in QEMU (`getfd`); migrate consumes it.
inline constexpr const char kMigrationFdName[] = "migration";

// What the stream holds besides the device state.
enum class RamInStream {
  kAll,           // every RAM block: a full copy
  // Not the RAM blocks mapped shared (x-ignore-shared): a memory template's
  // source saves devices only, and its clones, whose RAM maps the template,
  // must load with the same setting (QEMU refuses the stream otherwise).
  kIgnoreShared,
};

// Pauses the VM (`stop`), then writes its complete state to `fd` (a file open
// for writing at offset 0; QEMU gets a duplicate, the caller keeps and closes
// its own). On success the VM stays paused and its disks are flushed and
// inactivated: the caller ends this QEMU (QEMU refuses a second save of it)
// and may freeze its disk. Errors:
// the migration's own error text when QEMU reports failure, kTimeout after
// `timeout` (the migration is cancelled), kUnavailable if QEMU went away.
boost::asio::awaitable<Result<void>> SaveState(qmp::QmpClient& qmp, int fd, RamInStream ram,
                                               std::chrono::milliseconds timeout);

// Loads a state written by SaveState into a QEMU started with `-incoming
// defer` (same command line apart from per-VM paths and ids) from `fd` (a
// file open for reading at offset 0). On success the VM is loaded and paused,
// as it was saved; the caller sends `cont`. A corrupt or mismatched stream
// makes QEMU 7.2 exit: that comes back promptly as kUnavailable (the cause is
// in QEMU's stderr log), never as a wait for `timeout`.
boost::asio::awaitable<Result<void>> LoadState(qmp::QmpClient& qmp, int fd, RamInStream ram,
                                               std::chrono::milliseconds timeout);

}  // namespace agentvm
