// Named snapshots of a running VM: QEMU's internal qcow2 snapshots (memory,
// device state and disk in one), kept inside the VM's writable overlay and
// driven by QEMU 7.2's `snapshot-save` / `snapshot-load` / `snapshot-delete`
// jobs. They go when the overlay goes (release, remove).
//
// `node` is the VM's writable top qcow2 node ("disk0", see
// qemu_command_line.cc). Only that node is named to QEMU: in a restored
// clone's chain (disk0 -> frozen0 -> base0) the read-only backing files are
// never written.
//
// Facts of QEMU 7.2 these functions rely on or paper over (measured):
// - The job's work runs in one main-loop step, before QEMU even replies to
//   the command: QMP is unresponsive for the whole save or load, and a
//   timeout cannot interrupt it (the job is cancelled and dismissed on a
//   best-effort basis once QEMU answers again).
// - A running VM runs again after a save or a successful load; a failed load
//   leaves it paused (state "restore-vm"). Both functions put back the run
//   state the VM had before, so callers see no difference.
// - `snapshot-delete` of an unknown name succeeds silently and
//   `snapshot-load` of one pauses the VM, so both check the name first.
// - The guest's wall clock after a load is unreliable: under TCG with the
//   tsc clocksource it had kept pace with the host; with hpet it resumed at
//   the saved time. The caller resets it (through the agent).
// - A tag is looked up as a snapshot id ("1", "2", ...) before as a name, so
//   a name of digits only could load or delete another snapshot: all three
//   functions refuse such names (kInvalidArgument).
//
// A kTimeout means the caller stopped waiting, not that nothing happened: the
// job may still have taken effect (ListNamedSnapshots tells for a save).
// Names are otherwise validated by the caller (IsValidSnapshotName in
// supervisor/names.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/error.h"
#include "qmp/qmp_client.h"

namespace agentvm {

namespace qmp {
// One full snapshot as QEMU lists it.
struct NamedSnapshot {
  std::string name;
  std::uint64_t vm_state_bytes = 0;  // size of the saved memory and device state
  std::int64_t created_at = 0;       // unix seconds
};
}  // namespace qmp

// Saves memory, devices and disk as `name`. kConflict if `name` exists.
// Errors: QEMU's text for a failed job; kTimeout after `timeout`;
// kUnavailable if QEMU went away.
boost::asio::awaitable<Result<void>> SaveNamedSnapshot(qmp::QmpClient& qmp, const std::string& name,
                                                       const std::string& node,
                                                       std::chrono::milliseconds timeout);

// Brings memory, devices and disk back to snapshot `name`. kNotFound if there
// is no such (full) snapshot. Errors otherwise as for SaveNamedSnapshot.
boost::asio::awaitable<Result<void>> LoadNamedSnapshot(qmp::QmpClient& qmp, const std::string& name,
                                                       const std::string& node,
                                                       std::chrono::milliseconds timeout);

// Removes snapshot `name` from the overlay. kNotFound if there is none.
boost::asio::awaitable<Result<void>> DeleteNamedSnapshot(qmp::QmpClient& qmp, const std::string& name,
                                                         const std::string& node,
                                                         std::chrono::milliseconds timeout);

// The full snapshots (those with memory state) of `node`, oldest first.
// Disk-only snapshots (made with qemu-img, say) are left out: they cannot be
// loaded into a running VM. kNotFound if QEMU has no node called `node`.
boost::asio::awaitable<Result<std::vector<qmp::NamedSnapshot>>> ListNamedSnapshots(qmp::QmpClient& qmp,
                                                                             const std::string& node);

}  // namespace agentvm
