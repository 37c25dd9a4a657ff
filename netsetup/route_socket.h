// An rtnetlink socket through libnl, opened in the calling thread's network
// namespace (a socket stays in the namespace it was made in).
#pragma once

#include <memory>
#include <string>

#include "common/error.h"

struct nl_sock;
struct rtnl_link;

namespace agentvm::net {

class RouteSocket {
 public:
  static Result<RouteSocket> Open();

  RouteSocket(RouteSocket&& other) noexcept;
  RouteSocket& operator=(RouteSocket&& other) noexcept;
  RouteSocket(const RouteSocket&) = delete;
  RouteSocket& operator=(const RouteSocket&) = delete;
  ~RouteSocket();

  nl_sock* get() const { return sock_; }

 private:
  explicit RouteSocket(nl_sock* sock) : sock_(sock) {}
  nl_sock* sock_ = nullptr;
};

struct LinkDeleter {
  void operator()(rtnl_link* link) const;
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;

// The link called `name` as the kernel has it now; nullptr when there is none.
Result<LinkPtr> GetLink(const RouteSocket& socket, const std::string& name);

// libnl's text for one of its (negative) error codes.
std::string NlErrorText(int error);

}  // namespace agentvm::net
