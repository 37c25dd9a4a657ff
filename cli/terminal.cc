#include "cli/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace agentvm::cli {

Result<std::unique_ptr<RawTerminal>> RawTerminal::Enter(int fd) {
  termios saved{};
  if (::tcgetattr(fd, &saved) != 0) {
    return Fail(ErrorCode::kInvalidArgument, "the input is not a terminal (-t needs one; leave -t out for pipes)");
  }
  termios raw = saved;
  ::cfmakeraw(&raw);
  // cfmakeraw also stops output post-processing ("\n" to "\r\n"): the remote
  // terminal already did that.
  while (::tcsetattr(fd, TCSAFLUSH, &raw) != 0) {
    if (errno != EINTR) return Fail(ErrnoError("set the terminal to raw mode", errno));
  }
  return std::unique_ptr<RawTerminal>(new RawTerminal(fd, saved));
}

RawTerminal::~RawTerminal() {
  // TCSADRAIN: what the user typed ahead stays for the shell to read.
  while (::tcsetattr(fd_, TCSADRAIN, &saved_) != 0 && errno == EINTR) {
  }
}

std::optional<protocol::TerminalSize> TerminalSizeOf(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return std::nullopt;
  return protocol::TerminalSize{ws.ws_row, ws.ws_col};
}

}  // namespace agentvm::cli
