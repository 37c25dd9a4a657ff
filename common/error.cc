#include "common/error.h"

#include <cstring>

namespace agentvm {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kTooLarge: return "too_large";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

Error Error::Wrap(std::string_view context) const {
  return Error{code, std::string(context) + ": " + message};
}

std::string Error::ToString() const {
  return std::string(ErrorCodeName(code)) + ": " + message;
}

Error ErrnoError(std::string_view what, int err) {
  ErrorCode code = ErrorCode::kInternal;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EINVAL || err == ENAMETOOLONG) code = ErrorCode::kInvalidArgument;
  return Error{code, std::string(what) + ": " + std::strerror(err)};
}

}  // namespace agentvm
