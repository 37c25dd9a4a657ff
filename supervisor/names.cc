#include "supervisor/names.h"

#include <string>

namespace agentvm {
namespace {

constexpr std::size_t kMaxNameBytes = 64;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// 1-64 characters, the first a lower-case letter or digit, each one of
// those or of `also`.
bool IsLowerName(std::string_view name, std::string_view also) {
  if (name.empty() || name.size() > kMaxNameBytes || !IsLowerAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && also.find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::unexpected<Error> Refuse(std::string_view what, std::string_view name, std::string_view expected) {
  return Fail(ErrorCode::kInvalidArgument, "invalid " + std::string(what) + " \"" + QuoteForError(name) +
                                               "\": expected " + std::string(expected));
}

}  // namespace

bool IsValidVmId(std::string_view id) { return IsLowerName(id, "-"); }

// A leading letter or digit already rules out "." and "..".
bool IsValidImageName(std::string_view name) { return IsLowerName(name, "._-"); }

bool IsValidSnapshotName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || name[0] == '.' || name[0] == '-') return false;
  if (name.find_first_not_of("0123456789") == std::string_view::npos) return false;
  for (char c : name) {
    const bool ok = IsLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<void> ValidateVmId(std::string_view id) {
  if (IsValidVmId(id)) return {};
  return Refuse("VM id", id, "1-64 characters of [a-z0-9-], starting with a letter or digit");
}

Result<void> ValidateImageName(std::string_view name) {
  if (IsValidImageName(name)) return {};
  return Refuse("image name", name, "1-64 characters of [a-z0-9._-], starting with a letter or digit");
}

Result<void> ValidateSnapshotName(std::string_view name) {
  if (IsValidSnapshotName(name)) return {};
  return Refuse("snapshot name", name,
                "1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-', not all digits");
}

}  // namespace agentvm
