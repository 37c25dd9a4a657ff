#pragma once

#include <functional>
#include <string>

namespace agentvm::testing {

// A network namespace made for one test (`ip netns add`) and deleted with it,
// so privileged tests never touch the root namespace's links or rules.
class NetNamespace {
 public:
  explicit NetNamespace(const std::string& prefix = "avmtest");
  ~NetNamespace();
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Runs `body` on a thread that entered network namespace `ns` (by name, as
// `ip netns` knows it): every socket it opens, netlink ones included, is
// there for good. The body never runs if setns fails (a test failure).
void RunInNetns(const std::string& ns, const std::function<void()>& body);

}  // namespace agentvm::testing
