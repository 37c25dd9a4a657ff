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
  UniqueFd kill(::openat(dir_.get(), "cgroup.kill", O_WRONLY | O_CLOEXEC));
  if (!kill || ::write(kill.get(), "1", 1) != 1) {
    LogWarn("kill cgroup " + path_ + ": " + std::strerror(errno));
  }
}

bool ExecCgroup::Empty() const {
  char buf[256];
  ssize_t n = ::pread(events_.get(), buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  buf[n] = '\0';
  return std::strstr(buf, "populated 0") != nullptr;
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

ExecCgroups::~ExecCgroups() {
  for (const auto& cgroup : kept_) ::rmdir(cgroup->path().c_str());
}

AgentResult<std::unique_ptr<ExecCgroup>> ExecCgroups::Create() {
  if (!kept_.empty()) {
    std::unique_ptr<ExecCgroup> cgroup = std::move(kept_.back());
    kept_.pop_back();
    return cgroup;
  }
  // Names an earlier agent left (its retired cgroups, or kept ones after
  // a crash) are skipped.
  std::string path = root_ + "/exec-" + std::to_string(next_++);
  for (int tries = 0; ::mkdir(path.c_str(), 0755) != 0; ++tries) {
    int err = errno;
    if (err == EEXIST && tries < 10000) {
      path = root_ + "/exec-" + std::to_string(next_++);
      continue;
    }
    return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeInternal),
                                                "exec: mkdir " + path + ": " + std::strerror(err)});
  }
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd events(dir ? ::openat(dir.get(), "cgroup.events", O_RDONLY | O_CLOEXEC) : -1);
  if (!dir || !events) {
    int err = errno;
    std::string file = dir ? "/cgroup.events" : "";
    ::rmdir(path.c_str());
    return std::unexpected(protocol::ErrorReply{std::string(protocol::kCodeInternal),
                                                "exec: open " + path + file + ": " + std::strerror(err)});
  }
  return std::make_unique<ExecCgroup>(std::move(path), std::move(dir), std::move(events));
}

void ExecCgroups::Retire(std::unique_ptr<ExecCgroup> cgroup) {
  if (!cgroup) return;
  if (kept_.size() < kMaxKept && cgroup->Empty()) {
    kept_.push_back(std::move(cgroup));
    return;
  }
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
