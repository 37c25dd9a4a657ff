// The Kubernetes exec channel convention, as agentvmd's interactive exec
// speaks it over a WebSocket (GET /v1/vms/{id}/exec, docs/api.md): every
// binary message starts with a channel byte, then the payload.
//   0 stdin (client to server)       1 stdout        2 stderr
//   3 status: JSON, the last message (a Kubernetes Status object)
//   4 resize: JSON {"Width": cols, "Height": rows} (client to server)
//   255 close (v5.channel.k8s.io): payload [0] ends stdin
// Plain code shared by the server and the CLI: no sockets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "protocol/exec_types.h"

namespace agentvm::api {

inline constexpr std::string_view kChannelProtocolV5 = "v5.channel.k8s.io";
inline constexpr std::string_view kChannelProtocolV4 = "v4.channel.k8s.io";

enum class ExecChannel : std::uint8_t {
  kStdin = 0,
  kStdout = 1,
  kStderr = 2,
  kStatus = 3,
  kResize = 4,
  kClose = 255,
};

struct ChannelMessage {
  ExecChannel channel = ExecChannel::kStdin;
  std::string_view payload;
};

std::string EncodeChannelMessage(ExecChannel channel, std::string_view payload);
// kInvalidArgument for an empty message or an unknown channel byte.
Result<ChannelMessage> DecodeChannelMessage(std::string_view message);

std::string ResizeJson(protocol::TerminalSize size);
// Width and Height, each 1 to 65535.
Result<protocol::TerminalSize> ParseResizeJson(std::string_view json);

// The status message: {"metadata":{},"status":"Success"}, or "Failure" with
// reason NonZeroExitCode and details.causes [{reason: ExitCode, message:
// "<shell status>"}] as kubectl reads it, or with the error's message and
// code for an exec that failed. Also exit_code, signal, timed_out and
// status (the shell status) at the top for clients that want them plainly.
std::string ExecStatusJson(const Result<protocol::ExecResult>& outcome);
// The inverse, for the CLI: the result, or the error the server reported.
Result<protocol::ExecResult> ParseExecStatusJson(std::string_view json);

}  // namespace agentvm::api
