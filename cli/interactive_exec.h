// `agentvm exec -i` / `-t` (and run, shell): a command run over agentvmd's
// WebSocket exec (GET /v1/vms/{id}/exec, docs/api.md) instead of the NDJSON
// stream, because its stdin streams while its output does. The local stdin
// goes to the command as fast as the command reads it; output lands on the
// local stdout and stderr as it comes; with a terminal, the local one is in
// raw mode for the duration (restored on every way out) and the remote one
// follows its size (SIGWINCH).
#pragma once

#include <atomic>
#include <string>

#include "common/error.h"
#include "protocol/exec_types.h"

namespace agentvm::cli {

struct InteractiveIo {
  int in_fd = 0;
  int out_fd = 1;
  int err_fd = 2;
  bool forward_stdin = false;  // -i: in_fd streams to the command, its end ends stdin
  // -t: the command gets a terminal in the VM; when in_fd is a local
  // terminal too, it follows that one's size, and with -i it is put in raw
  // mode so every key (^C included) reaches the remote program.
  bool tty = false;
  bool* output_closed = nullptr;  // set when out_fd or err_fd stopped taking output
};

// Runs `request` (its tty, rows and cols already set for -t) in VM `id`.
// `interrupt_slot`: see InterruptScope; an interrupt ends the session, which
// ends the command (unless the request detaches). Errors read as the
// daemon's ("no such VM", "exec nope: No such file or directory").
Result<protocol::ExecResult> RunInteractiveExec(const std::string& socket_path, const std::string& id,
                                                const protocol::ExecRequest& request, const InteractiveIo& io,
                                                std::atomic<int>* interrupt_slot);

}  // namespace agentvm::cli
