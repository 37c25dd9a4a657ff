#pragma once

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

}  // namespace agentvm::testing
