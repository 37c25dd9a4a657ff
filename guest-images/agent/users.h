// Who an exec runs as: a user looked up in the guest's own /etc/passwd and
// /etc/group. Read directly rather than through getpwnam(): the agent is a
// static binary, and glibc's NSS would want shared libraries at run time.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guest-images/agent/file_ops.h"

namespace agentvm::guest {

struct UserInfo {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
  std::string shell;
  std::vector<gid_t> groups;  // supplementary groups; the primary one first
};

// The guest's files a login reads; tests point them elsewhere.
struct UserDatabase {
  std::string passwd = "/etc/passwd";
  std::string group = "/etc/group";
  std::string environment = "/etc/environment";
};

// The KEY=value lines of an /etc/environment-style file (pam_env's simple
// format: comments, blank lines, optional quotes around the value, an
// optional leading "export "). Lines it cannot read are skipped.
std::vector<std::pair<std::string, std::string>> ReadEnvironmentFile(const std::string& path);

// `user` is a name or a numeric uid. A uid without an entry still runs, as
// uid:uid with home "/" and shell /bin/sh (docker's --user 1234 does the
// same); an unknown name is kNotFound ("user \"x\": no such user").
AgentResult<UserInfo> LookupUser(std::string_view user, const UserDatabase& db = {});

// root as the agent itself runs: no credential change needed.
UserInfo RootUser();

}  // namespace agentvm::guest
