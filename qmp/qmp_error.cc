#include "qmp/qmp_error.h"

namespace agentvm::qmp {
namespace {

ErrorCode CodeFor(const QmpError& error) {
  switch (error.kind) {
    case QmpError::Kind::kCommandFailed:
      // The supervisor, not the user, composes QMP commands, so most failures
      // are ours; only "no such thing" and "wrong state" mean something more.
      if (error.qmp_class == "CommandNotFound" || error.qmp_class == "DeviceNotFound") {
        return ErrorCode::kNotFound;
      }
      if (error.qmp_class == "DeviceNotActive") return ErrorCode::kConflict;
      return ErrorCode::kInternal;
    case QmpError::Kind::kTimeout:
      return ErrorCode::kTimeout;
    case QmpError::Kind::kDisconnected:
    case QmpError::Kind::kProtocol:  // always closes the connection
    case QmpError::Kind::kConnect:
      return ErrorCode::kUnavailable;
  }
  return ErrorCode::kInternal;
}

}  // namespace

std::string_view QmpErrorKindName(QmpError::Kind kind) {
  switch (kind) {
    case QmpError::Kind::kCommandFailed: return "command_failed";
    case QmpError::Kind::kTimeout: return "timeout";
    case QmpError::Kind::kDisconnected: return "disconnected";
    case QmpError::Kind::kProtocol: return "protocol";
    case QmpError::Kind::kConnect: return "connect";
  }
  return "unknown";
}

Error QmpError::ToError() const {
  std::string text = "qmp";
  if (!command.empty()) text += " " + command;
  text += ": ";
  if (!qmp_class.empty()) text += qmp_class + ": ";
  text += message;
  return Error{CodeFor(*this), std::move(text)};
}

}  // namespace agentvm::qmp
