#pragma once

#include <filesystem>
#include <string>

namespace agentvm::testing {

// A fresh directory under /tmp, removed with everything in it on destruction.
// Short paths on purpose: VM sockets under it must fit sockaddr_un.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "avm");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace agentvm::testing
