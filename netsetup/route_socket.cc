#include "netsetup/route_socket.h"

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include <cstdlib>
#include <utility>

namespace agentvm::net {

Result<RouteSocket> RouteSocket::Open() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) return Fail(ErrorCode::kInternal, "netlink: out of memory");
  if (int err = nl_connect(sock, NETLINK_ROUTE); err < 0) {
    nl_socket_free(sock);
    return Fail(ErrorCode::kInternal, "netlink: connect: " + NlErrorText(err));
  }
  return RouteSocket(sock);
}

RouteSocket::RouteSocket(RouteSocket&& other) noexcept : sock_(std::exchange(other.sock_, nullptr)) {}

RouteSocket& RouteSocket::operator=(RouteSocket&& other) noexcept {
  if (this != &other) {
    if (sock_ != nullptr) nl_socket_free(sock_);
    sock_ = std::exchange(other.sock_, nullptr);
  }
  return *this;
}

RouteSocket::~RouteSocket() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

void LinkDeleter::operator()(rtnl_link* link) const { rtnl_link_put(link); }

Result<LinkPtr> GetLink(const RouteSocket& socket, const std::string& name) {
  rtnl_link* link = nullptr;
  int err = rtnl_link_get_kernel(socket.get(), 0, name.c_str(), &link);
  // The kernel's ENODEV arrives as NLE_OBJ_NOTFOUND.
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return LinkPtr();
  if (err < 0) return Fail(ErrorCode::kInternal, "get link " + name + ": " + NlErrorText(err));
  return LinkPtr(link);
}

std::string NlErrorText(int error) { return nl_geterror(std::abs(error)); }

}  // namespace agentvm::net
