#include "netsetup/links.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "common/unique_fd.h"
#include "netsetup/net_names.h"
#include "netsetup/route_socket.h"

namespace agentvm::net {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("net"); }

Result<void> CheckName(const std::string& name) {
  if (!IsValidLinkName(name)) return Fail(ErrorCode::kInvalidArgument, "invalid interface name \"" + name + "\"");
  return {};
}

// Adds gateway/prefix_length to the link; an address already there is fine.
Result<void> AddAddress(const RouteSocket& socket, int ifindex, Ipv4Address gateway, int prefix_length) {
  std::uint32_t be = htonl(gateway.value);
  nl_addr* local = nl_addr_build(AF_INET, &be, sizeof be);
  rtnl_addr* addr = rtnl_addr_alloc();
  if (local == nullptr || addr == nullptr) {
    if (local != nullptr) nl_addr_put(local);
    if (addr != nullptr) rtnl_addr_put(addr);
    return Fail(ErrorCode::kInternal, "netlink: out of memory");
  }
  nl_addr_set_prefixlen(local, prefix_length);
  rtnl_addr_set_ifindex(addr, ifindex);
  int err = rtnl_addr_set_local(addr, local);
  rtnl_addr_set_prefixlen(addr, prefix_length);
  if (err == 0) err = rtnl_addr_add(socket.get(), addr, 0);
  nl_addr_put(local);
  rtnl_addr_put(addr);
  if (err < 0 && err != -NLE_EXIST) {
    return Fail(ErrorCode::kInternal,
                "add address " + gateway.ToString() + "/" + std::to_string(prefix_length) + ": " + NlErrorText(err));
  }
  return {};
}

Result<void> BringUp(const RouteSocket& socket, rtnl_link* link, const std::string& name) {
  LinkPtr change(rtnl_link_alloc());
  if (!change) return Fail(ErrorCode::kInternal, "netlink: out of memory");
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(socket.get(), link, change.get(), 0); err < 0) {
    return Fail(ErrorCode::kInternal, "set " + name + " up: " + NlErrorText(err));
  }
  return {};
}

bool IsBridge(rtnl_link* link) {
  const char* type = rtnl_link_get_type(link);
  return type != nullptr && std::strcmp(type, "bridge") == 0;
}

Result<void> ConfigureBridge(const RouteSocket& socket, const std::string& name, Ipv4Address gateway,
                             int prefix_length) {
  auto link = GetLink(socket, name);
  if (!link) return Fail(link.error());
  if (!*link) return Fail(ErrorCode::kNotFound, "bridge " + name + " vanished while being set up");
  if (auto added = AddAddress(socket, rtnl_link_get_ifindex(link->get()), gateway, prefix_length); !added) {
    return Fail(added.error());
  }
  return BringUp(socket, link->get(), name);
}

}  // namespace

Result<bool> EnsureBridge(const std::string& name, Ipv4Address gateway, int prefix_length) {
  if (auto ok = CheckName(name); !ok) return Fail(ok.error());
  if (prefix_length < 1 || prefix_length > 30) {
    return Fail(ErrorCode::kInvalidArgument, "bridge prefix length must be 1..30, not " + std::to_string(prefix_length));
  }
  auto socket = RouteSocket::Open();
  if (!socket) return Fail(socket.error());
  auto existing = GetLink(*socket, name);
  if (!existing) return Fail(existing.error());
  bool created = false;
  if (*existing) {
    if (!IsBridge(existing->get())) {
      return Fail(ErrorCode::kConflict, "interface " + name + " exists and is not a bridge");
    }
  } else {
    int err = rtnl_link_bridge_add(socket->get(), name.c_str());
    if (err < 0 && err != -NLE_EXIST) {
      return Fail(ErrorCode::kInternal, "create bridge " + name + ": " + NlErrorText(err));
    }
    created = err == 0;
    if (created) DisableIpv6(name);
  }
  if (auto configured = ConfigureBridge(*socket, name, gateway, prefix_length); !configured) {
    if (created) (void)DeleteLink(name);
    return Fail(configured.error().Wrap("bridge " + name));
  }
  if (created) {
    Log()->info("created bridge {} with {}/{}", name, gateway.ToString(), prefix_length);
  } else {
    Log()->info("using existing bridge {} with {}/{}", name, gateway.ToString(), prefix_length);
  }
  return created;
}

Result<void> DeleteLink(const std::string& name) {
  if (auto ok = CheckName(name); !ok) return Fail(ok.error());
  auto socket = RouteSocket::Open();
  if (!socket) return Fail(socket.error());
  LinkPtr link(rtnl_link_alloc());
  if (!link) return Fail(ErrorCode::kInternal, "netlink: out of memory");
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_delete(socket->get(), link.get());
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return Fail(ErrorCode::kNotFound, "no interface " + name);
  if (err < 0) return Fail(ErrorCode::kInternal, "delete interface " + name + ": " + NlErrorText(err));
  Log()->info("deleted interface {}", name);
  return {};
}

Result<bool> LinkExists(const std::string& name) {
  if (auto ok = CheckName(name); !ok) return Fail(ok.error());
  auto socket = RouteSocket::Open();
  if (!socket) return Fail(socket.error());
  auto link = GetLink(*socket, name);
  if (!link) return Fail(link.error());
  return *link != nullptr;
}

Result<void> EnableIpv4Forwarding() {
  constexpr const char* kPath = "/proc/sys/net/ipv4/ip_forward";
  UniqueFd fd(::open(kPath, O_WRONLY | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError(std::string("open ") + kPath, errno));
  ssize_t written = ::write(fd.get(), "1\n", 2);
  int err = errno;
  if (written != 2) return Fail(ErrnoError(std::string("write ") + kPath, written < 0 ? err : EIO));
  return {};
}

void DisableIpv6(const std::string& name) {
  const std::string path = "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), "1\n", 2) != 2) Log()->warn("{}: cannot disable IPv6 ({})", name, path);
}


}  // namespace agentvm::net
