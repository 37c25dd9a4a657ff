// ExecCgroups: every exec in a cgroup (v2) of its own, so that everything it
// started, also what left its process group with setsid() or a double fork,
// can be killed at once (cgroup.kill) when its timeout fires, the host kills
// it, or the host goes away. A program that ends normally leaves what it
// started in the background running, as a shell would; its cgroup is removed
// once the last of those has gone.
//
// Without a usable cgroup2 directory (an old kernel, or a test on a host),
// execs are only put in a process group of their own, as before.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "guest-images/agent/file_ops.h"

namespace agentvm::guest {

// One exec's cgroup. Owned by its ExecSession; retired (not removed) when
// the session ends, since background processes may still be in it.
class ExecCgroup {
 public:
  ExecCgroup(std::string path, UniqueFd procs) : path_(std::move(path)), procs_(std::move(procs)) {}
  const std::string& path() const { return path_; }
  // cgroup.procs, for the child to join before it execs.
  int procs_fd() const { return procs_.get(); }
  // SIGKILL to every process in it, at once.
  void Kill() const;

 private:
  std::string path_;
  UniqueFd procs_;
};

class ExecCgroups {
 public:
  // `root`: a directory in a cgroup2 file system under which the agent may
  // make one cgroup per exec (created if missing). nullptr if unusable.
  static std::unique_ptr<ExecCgroups> Open(const std::string& root);

  // A new, empty cgroup for one exec.
  AgentResult<std::unique_ptr<ExecCgroup>> Create();
  // Its exec ended: the directory goes once nothing runs in it.
  void Retire(std::unique_ptr<ExecCgroup> cgroup);
  // Removes retired cgroups that have emptied. Cheap; call now and then.
  void RemoveEmpty();
  std::size_t retired() const { return retired_.size(); }

 private:
  explicit ExecCgroups(std::string root) : root_(std::move(root)) {}
  std::string root_;
  std::uint64_t next_ = 1;
  std::vector<std::string> retired_;
};

}  // namespace agentvm::guest
