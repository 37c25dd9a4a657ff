#include "supervisor/unix_listener.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace agentvm {
namespace {

Result<sockaddr_un> AddressOf(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Fail(ErrorCode::kInvalidArgument, "socket path empty or too long: " + path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

Result<UniqueFd> ListenUnix(const std::string& path, int backlog) {
  auto address = AddressOf(path);
  if (!address) return Fail(address.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Fail(ErrnoError("socket for " + path, errno));
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
    return Fail(ErrnoError("bind " + path, errno));
  }
  if (::listen(fd.get(), backlog) != 0) return Fail(ErrnoError("listen " + path, errno));
  return fd;
}

Result<UniqueFd> ConnectUnix(const std::string& path) {
  auto address = AddressOf(path);
  if (!address) return Fail(address.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Fail(ErrnoError("socket for " + path, errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
    return Fail(ErrnoError("connect " + path, errno));
  }
  return fd;
}

}  // namespace agentvm
