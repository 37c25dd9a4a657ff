#include "tests/support/netns.h"

#include <unistd.h>

#include <stdexcept>

#include "tests/support/command.h"

namespace agentvm::testing {

NetNamespace::NetNamespace(const std::string& prefix)
    : name_(prefix + "-" + std::to_string(::getpid())) {
  auto added = RunCommand({"ip", "netns", "add", name_}, std::chrono::seconds(10));
  if (added.exit_code != 0) throw std::runtime_error("ip netns add " + name_ + ": " + added.err);
}

NetNamespace::~NetNamespace() { RunCommand({"ip", "netns", "del", name_}, std::chrono::seconds(10)); }

}  // namespace agentvm::testing
