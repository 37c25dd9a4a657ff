#include "supervisor/names.h"

namespace agentvm {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

}  // namespace

bool IsValidVmId(std::string_view id) {
  if (id.empty() || id.size() > 64 || !IsLowerAlnum(id[0])) return false;
  for (char c : id) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsValidImageName(std::string_view name) {
  if (name.empty() || name.size() > 64 || !IsLowerAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;  // a leading alnum already rules out "." and ".."
}

}  // namespace agentvm
