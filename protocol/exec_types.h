// The exec request and its outcome as both ends of the guest protocol and the
// supervisor's API see them. Plain data; the wire encoding is in messages.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentvm::protocol {

// A terminal's size in character cells.
struct TerminalSize {
  std::uint16_t rows = 24;
  std::uint16_t cols = 80;
  bool operator==(const TerminalSize&) const = default;
};

// A user name ([A-Za-z0-9_.-], not starting with '-', at most 32 bytes, as
// useradd takes them) or a numeric uid: what an exec's `user` may be.
bool IsValidExecUser(std::string_view user);

struct ExecRequest {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH
  std::map<std::string, std::string> env;  // added to the agent's base environment
  std::string cwd;                         // empty: "/"
  std::chrono::milliseconds timeout{0};    // 0: no timeout
  std::string stdin_data;                  // fed to the process, then stdin is closed
  // Who runs it: a name or uid from the guest's /etc/passwd, with its groups,
  // home and shell. Empty: the agent runs it as root (the host fills in the
  // image's default user before it gets that far).
  std::string user;
  // A pseudo-terminal instead of pipes: the program's stdin, stdout and
  // stderr are the terminal, its output comes back as stdout, and it is the
  // session leader with the terminal as its controlling terminal.
  bool tty = false;
  TerminalSize size;  // with tty: the terminal's first size
  // API only: the command runs on when its client goes away (otherwise it
  // is killed then, with everything it started).
  bool detach = false;
  // Host side only: stdin_data is just the start, the rest comes through
  // ExecStream::WriteStdin and stdin closes when that says eof.
  bool stream_stdin = false;
};

struct ExecResult {
  std::optional<int> exit_code;  // set when the process exited
  std::optional<int> signal;     // set when a signal ended it
  bool timed_out = false;        // the timeout fired and the process group was killed

  // Shell convention: the exit code, 128+signal, or 124 when the timeout
  // fired; 255 for anything outside 0-255 and 1-127 (ParseExit refuses
  // those from a guest, this keeps the arithmetic safe for any caller).
  int ShellStatus() const {
    if (timed_out) return 124;
    if (exit_code) return *exit_code >= 0 && *exit_code <= 255 ? *exit_code : 255;
    if (signal && *signal > 0 && *signal < 128) return 128 + *signal;
    return 255;
  }
};

enum class OutputStream { kStdout, kStderr };

// Receives output as the guest produces it, in order per stream.
using OutputSink = std::function<void(OutputStream, std::string_view data)>;

}  // namespace agentvm::protocol
