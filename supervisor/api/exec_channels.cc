#include "supervisor/api/exec_channels.h"

#include <nlohmann/json.hpp>

#include "supervisor/api/json_codec.h"

namespace agentvm::api {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::unexpected<Error> Invalid(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

std::optional<int> OptionalInt(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int>();
}

}  // namespace

std::string EncodeChannelMessage(ExecChannel channel, std::string_view payload) {
  std::string message(1, static_cast<char>(channel));
  message.append(payload);
  return message;
}

Result<ChannelMessage> DecodeChannelMessage(std::string_view message) {
  if (message.empty()) return Invalid("empty exec channel message");
  auto byte = static_cast<std::uint8_t>(message[0]);
  switch (static_cast<ExecChannel>(byte)) {
    case ExecChannel::kStdin:
    case ExecChannel::kStdout:
    case ExecChannel::kStderr:
    case ExecChannel::kStatus:
    case ExecChannel::kResize:
    case ExecChannel::kClose:
      return ChannelMessage{static_cast<ExecChannel>(byte), message.substr(1)};
  }
  return Invalid("unknown exec channel " + std::to_string(byte));
}

std::string ResizeJson(protocol::TerminalSize size) {
  return json{{"Width", size.cols}, {"Height", size.rows}}.dump();
}

Result<protocol::TerminalSize> ParseResizeJson(std::string_view text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return Invalid("resize message is not a JSON object");
  protocol::TerminalSize size;
  for (auto [key, slot] : {std::pair{"Width", &size.cols}, std::pair{"Height", &size.rows}}) {
    auto it = value.find(key);
    if (it == value.end() || !it->is_number_unsigned() || it->get<std::uint64_t>() < 1 ||
        it->get<std::uint64_t>() > 65535) {
      return Invalid(std::string("resize message needs ") + key + " from 1 to 65535");
    }
    *slot = static_cast<std::uint16_t>(it->get<std::uint64_t>());
  }
  return size;
}

std::string ExecStatusJson(const Result<protocol::ExecResult>& outcome) {
  ordered_json status{{"metadata", json::object()}};
  if (!outcome) {
    status["status"] = "Failure";
    status["message"] = outcome.error().message;
    status["reason"] = "InternalError";
    status["code"] = ErrorCodeName(outcome.error().code);
    return DumpJson(status);
  }
  const protocol::ExecResult& result = *outcome;
  int shell_status = result.ShellStatus();
  if (shell_status == 0) {
    status["status"] = "Success";
  } else {
    status["status"] = "Failure";
    status["message"] = "command terminated with non-zero exit code: " + std::to_string(shell_status);
    status["reason"] = "NonZeroExitCode";
    status["details"] = {{"causes", json::array({{{"reason", "ExitCode"}, {"message", std::to_string(shell_status)}}})}};
  }
  status["exit_code"] = result.exit_code ? ordered_json(*result.exit_code) : ordered_json(nullptr);
  status["signal"] = result.signal ? ordered_json(*result.signal) : ordered_json(nullptr);
  status["timed_out"] = result.timed_out;
  status["status_code"] = shell_status;
  return DumpJson(status);
}

Result<protocol::ExecResult> ParseExecStatusJson(std::string_view text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return Fail(ErrorCode::kInternal, "malformed exec status from agentvmd");
  if (value.value("status", "") != "Success" && value.value("reason", "") != "NonZeroExitCode") {
    std::string message = value.value("message", "the exec failed");
    return Fail(ErrorCodeFromName(value.value("code", "internal")), message);
  }
  protocol::ExecResult result;
  result.exit_code = OptionalInt(value, "exit_code");
  result.signal = OptionalInt(value, "signal");
  result.timed_out = value.value("timed_out", false);
  if (!result.exit_code && !result.signal && !result.timed_out) result.exit_code = 0;
  return result;
}

}  // namespace agentvm::api
