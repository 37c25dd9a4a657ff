#include "supervisor/kernel_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace agentvm {

Result<void> WriteKernelFile(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError("open " + path, errno));
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return Fail(ErrnoError("write " + value + " to " + path, errno));
  }
  return {};
}

}  // namespace agentvm
