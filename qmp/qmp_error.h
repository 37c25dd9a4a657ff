// The one error type of qmp/: what went wrong talking to QEMU, precise enough
// for a caller to branch on (a QMP error class, a timeout, a dead QEMU), and
// convertible to agentvm::Error on the way up.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "common/error.h"

namespace agentvm::qmp {

struct QmpError {
  enum class Kind {
    kCommandFailed,  // QEMU answered {"error": {"class", "desc"}}
    kTimeout,        // no reply (or event, or greeting) before the deadline
    kDisconnected,   // the connection is gone: QEMU exited, or Close() was called
    kProtocol,       // QEMU sent something that is not QMP; the connection is closed
    kConnect,        // could not connect to the QMP socket
  };

  Kind kind = Kind::kProtocol;
  std::string command;    // the QMP command concerned; empty for connection-level errors
  std::string qmp_class;  // QMP error class ("CommandNotFound", "GenericError"); kCommandFailed only
  std::string message;    // QMP "desc", or what went wrong

  // ErrorCode by kind and class; message "qmp <cmd>: <class>: <desc>" (parts
  // that are empty are left out).
  Error ToError() const;
  std::string ToString() const { return ToError().message; }
};

std::string_view QmpErrorKindName(QmpError::Kind kind);

template <class T>
using QmpResult = std::expected<T, QmpError>;

inline std::unexpected<QmpError> QmpFail(QmpError::Kind kind, std::string command,
                                         std::string message) {
  return std::unexpected<QmpError>(QmpError{kind, std::move(command), {}, std::move(message)});
}

}  // namespace agentvm::qmp
