#include "tests/support/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/command.h"

namespace agentvm::testing {

NetNamespace::NetNamespace(const std::string& prefix)
    : name_(prefix + "-" + std::to_string(::getpid())) {
  auto added = RunCommand({"ip", "netns", "add", name_}, std::chrono::seconds(10));
  if (added.exit_code != 0) throw std::runtime_error("ip netns add " + name_ + ": " + added.err);
}

NetNamespace::~NetNamespace() { RunCommand({"ip", "netns", "del", name_}, std::chrono::seconds(10)); }

void RunInNetns(const std::string& ns, const std::function<void()>& body) {
  std::thread worker([&] {
    const std::string path = "/run/netns/" + ns;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    const int entered = ::setns(fd, CLONE_NEWNET);
    const int err = errno;
    ::close(fd);
    ASSERT_EQ(entered, 0) << "setns " << path << ": " << std::strerror(err);
    body();
  });
  worker.join();
}

}  // namespace agentvm::testing
