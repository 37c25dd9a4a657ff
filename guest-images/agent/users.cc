#include "guest-images/agent/users.h"

#include <charconv>
#include <fstream>
#include <optional>

namespace agentvm::guest {
namespace {

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  while (true) {
    std::size_t colon = line.find(':');
    fields.push_back(line.substr(0, colon));
    if (colon == std::string_view::npos) return fields;
    line.remove_prefix(colon + 1);
  }
}

std::optional<std::uint32_t> ParseId(std::string_view text) {
  std::uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The passwd entry whose name (or, for a numeric `user`, uid) matches.
std::optional<UserInfo> FindPasswdEntry(std::string_view user, const std::string& path) {
  std::optional<std::uint32_t> uid = ParseId(user);
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto f = SplitFields(line);
    if (f.size() < 7) continue;
    auto entry_uid = ParseId(f[2]);
    auto entry_gid = ParseId(f[3]);
    if (!entry_uid || !entry_gid) continue;
    if (uid ? *entry_uid != *uid : f[0] != user) continue;
    UserInfo info;
    info.uid = *entry_uid;
    info.gid = *entry_gid;
    info.name = std::string(f[0]);
    info.home = f[5].empty() ? "/" : std::string(f[5]);
    info.shell = f[6].empty() ? "/bin/sh" : std::string(f[6]);
    return info;
  }
  return std::nullopt;
}

// Groups listing `name` as a member (4th field of /etc/group).
void AddSupplementaryGroups(UserInfo* info, const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto f = SplitFields(line);
    if (f.size() < 4) continue;
    auto gid = ParseId(f[2]);
    if (!gid || *gid == info->gid) continue;
    std::string_view members = f[3];
    while (!members.empty()) {
      std::size_t comma = members.find(',');
      if (members.substr(0, comma) == info->name) {
        info->groups.push_back(*gid);
        break;
      }
      if (comma == std::string_view::npos) break;
      members.remove_prefix(comma + 1);
    }
  }
}

}  // namespace

AgentResult<UserInfo> LookupUser(std::string_view user, const UserDatabase& db) {
  if (!protocol::IsValidExecUser(user)) {
    return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeInvalidArgument),
                                                "user \"" + std::string(user) + "\": not a user name or uid"});
  }
  std::optional<UserInfo> info = FindPasswdEntry(user, db.passwd);
  if (!info) {
    auto uid = ParseId(user);
    if (!uid) {
      return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeNotFound),
                                                  "user \"" + std::string(user) + "\": no such user"});
    }
    info = UserInfo{*uid, *uid, std::string(user), "/", "/bin/sh", {}};
  }
  info->groups.insert(info->groups.begin(), info->gid);
  AddSupplementaryGroups(&*info, db.group);
  return *info;
}

std::vector<std::pair<std::string, std::string>> ReadEnvironmentFile(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> vars;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::string_view text = line;
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    if (text.empty() || text.front() == '#') continue;
    if (text.starts_with("export ")) text.remove_prefix(7);
    std::size_t eq = text.find('=');
    if (eq == 0 || eq == std::string_view::npos) continue;
    std::string_view key = text.substr(0, eq);
    std::string_view value = text.substr(eq + 1);
    if (key.find_first_of(" \t") != std::string_view::npos) continue;
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    vars.emplace_back(std::string(key), std::string(value));
  }
  return vars;
}

UserInfo RootUser() { return UserInfo{0, 0, "root", "/root", "/bin/sh", {0}}; }

}  // namespace agentvm::guest
