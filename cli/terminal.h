// The local terminal, for `agentvm exec -t`: raw mode for as long as the
// remote program owns the screen, restored on every way out (return,
// error, exception); and its size, for the remote terminal to follow.
#pragma once

#include <termios.h>

#include <memory>
#include <optional>

#include "common/error.h"
#include "protocol/exec_types.h"

namespace agentvm::cli {

class RawTerminal {
 public:
  // Puts the terminal `fd` in raw mode (no echo, no line editing, no
  // signals from ^C or ^Z: those keys reach the remote program as bytes).
  // kInvalidArgument if `fd` is not a terminal.
  static Result<std::unique_ptr<RawTerminal>> Enter(int fd);
  ~RawTerminal();  // the modes as they were before
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  RawTerminal(int fd, const termios& saved) : fd_(fd), saved_(saved) {}
  int fd_;
  termios saved_;
};

// The size of the terminal `fd`; nullopt if it is not one.
std::optional<protocol::TerminalSize> TerminalSizeOf(int fd);

}  // namespace agentvm::cli
