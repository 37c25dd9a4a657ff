#include "guest-images/agent/users.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>

#include "common/unique_fd.h"

namespace agentvm::guest {
namespace {

// Larger files are read this far: a user database or environment file of
// megabytes is not one a guest system uses.
constexpr std::size_t kMaxFileBytes = 4 * 1024 * 1024;

// The file's text, empty when it cannot be read. Plain reads, not an
// ifstream: this runs on every exec, and under TCG a stream's setup cost
// more than the reading.
std::string ReadSmallFile(const std::string& path) {
  std::string text;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return text;
  char buf[8192];
  while (text.size() < kMaxFileBytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

// Calls `fn` with each line of `text`, without its newline.
template <typename Fn>
void ForEachLine(std::string_view text, Fn fn) {
  while (!text.empty()) {
    std::size_t newline = text.find('\n');
    fn(text.substr(0, newline));
    if (newline == std::string_view::npos) return;
    text.remove_prefix(newline + 1);
  }
}

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
  std::optional<UserInfo> found;
  ForEachLine(ReadSmallFile(path), [&](std::string_view line) {
    if (found) return;
    auto f = SplitFields(line);
    if (f.size() < 7) return;
    auto entry_uid = ParseId(f[2]);
    auto entry_gid = ParseId(f[3]);
    if (!entry_uid || !entry_gid) return;
    if (uid ? *entry_uid != *uid : f[0] != user) return;
    UserInfo info;
    info.uid = *entry_uid;
    info.gid = *entry_gid;
    info.name = std::string(f[0]);
    info.home = f[5].empty() ? "/" : std::string(f[5]);
    info.shell = f[6].empty() ? "/bin/sh" : std::string(f[6]);
    found = std::move(info);
  });
  return found;
}

// Groups listing `name` as a member (4th field of /etc/group).
void AddSupplementaryGroups(UserInfo* info, const std::string& path) {
  ForEachLine(ReadSmallFile(path), [info](std::string_view line) {
    auto f = SplitFields(line);
    if (f.size() < 4) return;
    auto gid = ParseId(f[2]);
    if (!gid || *gid == info->gid) return;
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
  });
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
  ForEachLine(ReadSmallFile(path), [&vars](std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    if (text.empty() || text.front() == '#') return;
    if (text.starts_with("export ")) text.remove_prefix(7);
    std::size_t eq = text.find('=');
    if (eq == 0 || eq == std::string_view::npos) return;
    std::string_view key = text.substr(0, eq);
    std::string_view value = text.substr(eq + 1);
    if (key.find_first_of(" \t") != std::string_view::npos) return;
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    vars.emplace_back(std::string(key), std::string(value));
  });
  return vars;
}

UserInfo RootUser() { return UserInfo{0, 0, "root", "/root", "/bin/sh", {0}}; }

}  // namespace agentvm::guest
