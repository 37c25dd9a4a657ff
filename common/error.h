// The one error value of agentvm (in the spirit of leveldb's Status): a code a
// caller can branch on and a message a person can read. Components return
// std::expected<T, Error>; each layer that adds meaning wraps the message with
// its own context on the way up ("create vm-1: qemu-img: ...").
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace agentvm {

enum class ErrorCode {
  kInvalidArgument,  // the request itself is wrong: 400
  kNotFound,         // no such VM, image, file: 404
  kConflict,         // valid request, wrong state (stop a stopped VM): 409
  kTimeout,          // a peer did not answer in time
  kUnavailable,      // a peer went away (QEMU died, connection closed)
  kTooLarge,         // a frame or body over its limit
  kInternal,         // our bug or the host's fault: 500
};

inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kConflict, ErrorCode::kTimeout,
    ErrorCode::kUnavailable,     ErrorCode::kTooLarge, ErrorCode::kInternal,
};

// "invalid_argument", "not_found", ...: the names the API and the guest
// protocol carry on the wire.
std::string_view ErrorCodeName(ErrorCode code);
// The inverse of ErrorCodeName; kInternal for a name it never gives.
ErrorCode ErrorCodeFromName(std::string_view name);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // Returns a copy whose message reads "<context>: <message>".
  Error Wrap(std::string_view context) const;
  std::string ToString() const;
};

template <class T>
using Result = std::expected<T, Error>;

// Spelled once so call sites read `return Fail(ErrorCode::kNotFound, ...)`.
inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}
inline std::unexpected<Error> Fail(Error error) {
  return std::unexpected<Error>(std::move(error));
}

// Error from errno, message "<what>: <strerror(err)>".
Error ErrnoError(std::string_view what, int err);

// A short printable rendering of untrusted input for error messages: at most
// 64 bytes, non-printable bytes, quotes and backslashes as \xNN.
std::string QuoteForError(std::string_view text);

}  // namespace agentvm
