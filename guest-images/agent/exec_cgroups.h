// ExecCgroups: every exec in a cgroup (v2) of its own, so that everything it
// started, also what left its process group with setsid() or a double fork,
// can be killed at once (cgroup.kill) when its timeout fires, the host kills
// it, or the host goes away. A program that ends normally leaves what it
// started in the background running, as a shell would; its cgroup is removed
// once the last of those has gone. A cgroup that is empty when its exec ends
// is kept for a later exec instead (a few at most): under TCG a mkdir and
// rmdir of a cgroup, and the kernel's deferred work after the rmdir, cost
// more than half a millisecond per exec.
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
  ExecCgroup(std::string path, UniqueFd dir, UniqueFd events)
      : path_(std::move(path)), dir_(std::move(dir)), events_(std::move(events)) {}
  const std::string& path() const { return path_; }
  // The cgroup's directory, for a child to start in (SpawnPlan::cgroup_fd).
  int dir_fd() const { return dir_.get(); }
  // SIGKILL to every process in it, at once.
  void Kill() const;
  // No process left in it (cgroup.events says "populated 0"); false when
  // that cannot be read.
  bool Empty() const;

 private:
  std::string path_;
  UniqueFd dir_;
  UniqueFd events_;
};

class ExecCgroups {
 public:
  // `root`: a directory in a cgroup2 file system under which the agent may
  // make one cgroup per exec (created if missing). nullptr if unusable.
  static std::unique_ptr<ExecCgroups> Open(const std::string& root);

  // Removes the cgroups kept for reuse (retired ones may still hold
  // processes: they stay).
  ~ExecCgroups();
  ExecCgroups(const ExecCgroups&) = delete;
  ExecCgroups& operator=(const ExecCgroups&) = delete;

  // An empty cgroup for one exec: one kept from an earlier exec, else new.
  AgentResult<std::unique_ptr<ExecCgroup>> Create();
  // Its exec ended: kept for the next exec if nothing runs in it (and fewer
  // than kMaxKept are kept), else the directory goes once nothing does.
  void Retire(std::unique_ptr<ExecCgroup> cgroup);
  // Removes retired cgroups that have emptied. Cheap; call now and then.
  void RemoveEmpty();
  std::size_t retired() const { return retired_.size(); }
  std::size_t kept() const { return kept_.size(); }

  // Empty cgroups kept for reuse: enough for a few execs at once.
  static constexpr std::size_t kMaxKept = 4;

 private:
  explicit ExecCgroups(std::string root) : root_(std::move(root)) {}
  std::string root_;
  std::uint64_t next_ = 1;
  std::vector<std::string> retired_;
  std::vector<std::unique_ptr<ExecCgroup>> kept_;
};

}  // namespace agentvm::guest
