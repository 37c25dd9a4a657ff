#include "guest-images/agent/exec_cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <linux/magic.h>

#include "guest-images/agent/log.h"

namespace agentvm::guest {

void ExecCgroup::Kill() const {
  UniqueFd kill(::open((path_ + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC));
  if (!kill || ::write(kill.get(), "1", 1) != 1) {
    LogWarn("kill cgroup " + path_ + ": " + std::strerror(errno));
  }
}

std::unique_ptr<ExecCgroups> ExecCgroups::Open(const std::string& root) {
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    LogWarn("exec cgroups: mkdir " + root + ": " + std::strerror(errno) + "; execs get process groups only");
    return nullptr;
  }
  struct statfs fs {};
  if (::statfs(root.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC) {
    LogWarn("exec cgroups: " + root + " is not in a cgroup2 file system; execs get process groups only");
    return nullptr;
  }
  // cgroup.kill arrived in Linux 5.14; without it a cgroup cannot be killed.
  std::string probe = root + "/cgroup.kill";
  if (::access(probe.c_str(), F_OK) != 0) {
    LogWarn("exec cgroups: no cgroup.kill under " + root + "; execs get process groups only");
    return nullptr;
  }
  return std::unique_ptr<ExecCgroups>(new ExecCgroups(root));
}

AgentResult<std::unique_ptr<ExecCgroup>> ExecCgroups::Create() {
  std::string path = root_ + "/exec-" + std::to_string(next_++);
  if (::mkdir(path.c_str(), 0755) != 0) {
    int err = errno;
    return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeInternal),
                                                "exec: mkdir " + path + ": " + std::strerror(err)});
  }
  UniqueFd procs(::open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!procs) {
    int err = errno;
    ::rmdir(path.c_str());
    return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeInternal),
                                                "exec: open " + path + "/cgroup.procs: " + std::strerror(err)});
  }
  return std::make_unique<ExecCgroup>(std::move(path), std::move(procs));
}

void ExecCgroups::Retire(std::unique_ptr<ExecCgroup> cgroup) {
  if (!cgroup) return;
  retired_.push_back(cgroup->path());
  RemoveEmpty();
}

void ExecCgroups::RemoveEmpty() {
  // rmdir succeeds exactly when no process is left (EBUSY otherwise).
  std::erase_if(retired_, [](const std::string& path) {
    return ::rmdir(path.c_str()) == 0 || errno == ENOENT;
  });
}

}  // namespace agentvm::guest
