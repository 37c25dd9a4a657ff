#include "protocol/exec_types.h"

#include <algorithm>

namespace agentvm::protocol {

bool IsValidExecUser(std::string_view user) {
  if (user.empty() || user.size() > 32 || user[0] == '-') return false;
  return std::all_of(user.begin(), user.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

}  // namespace agentvm::protocol
