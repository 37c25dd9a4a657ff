#include "netsetup/tap.h"

#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/logging.h"
#include "netsetup/links.h"
#include "netsetup/net_names.h"
#include "netsetup/route_socket.h"

namespace agentvm::net {
namespace {

std::shared_ptr<spdlog::logger> Log() { return Logger("net"); }

// libnl 3.7 has no setter for IFLA_BRPORT_ISOLATED, so this is the raw
// request `bridge link set dev <tap> isolated on` sends: RTM_SETLINK in the
// AF_BRIDGE family with the port flag nested in IFLA_PROTINFO. The kernel only
// reads IFLA_PROTINFO as port attributes when it carries NLA_F_NESTED.
Result<void> SetPortIsolated(const RouteSocket& socket, int ifindex) {
  nl_msg* msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
  if (msg == nullptr) return Fail(ErrorCode::kInternal, "netlink: out of memory");
  ifinfomsg info{};
  info.ifi_family = AF_BRIDGE;
  info.ifi_index = ifindex;
  int err = nlmsg_append(msg, &info, sizeof info, NLMSG_ALIGNTO);
  nlattr* protinfo = err < 0 ? nullptr : nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED);
  if (protinfo == nullptr || nla_put_u8(msg, IFLA_BRPORT_ISOLATED, 1) < 0 || nla_nest_end(msg, protinfo) < 0) {
    nlmsg_free(msg);
    return Fail(ErrorCode::kInternal, "netlink: cannot build the isolated-port request");
  }
  err = nl_send_sync(socket.get(), msg);  // frees msg
  if (err < 0) return Fail(ErrorCode::kInternal, "set bridge port isolated: " + NlErrorText(err));
  return {};
}

Result<void> Attach(const std::string& name, const std::string& bridge, bool isolated_port) {
  auto socket = RouteSocket::Open();
  if (!socket) return Fail(socket.error());
  auto master = GetLink(*socket, bridge);
  if (!master) return Fail(master.error());
  if (!*master) return Fail(ErrorCode::kNotFound, "no bridge " + bridge);
  const char* type = rtnl_link_get_type(master->get());
  if (type == nullptr || std::strcmp(type, "bridge") != 0) {
    return Fail(ErrorCode::kInvalidArgument, bridge + " is not a bridge");
  }
  auto tap = GetLink(*socket, name);
  if (!tap) return Fail(tap.error());
  if (!*tap) return Fail(ErrorCode::kInternal, "tap " + name + " vanished after creation");
  const int tap_index = rtnl_link_get_ifindex(tap->get());
  if (int err = rtnl_link_enslave_ifindex(socket->get(), rtnl_link_get_ifindex(master->get()), tap_index); err < 0) {
    return Fail(ErrorCode::kInternal, "enslave " + name + " to " + bridge + ": " + NlErrorText(err));
  }
  if (isolated_port) {
    if (auto isolated = SetPortIsolated(*socket, tap_index); !isolated) return Fail(isolated.error());
  }
  LinkPtr change(rtnl_link_alloc());
  if (!change) return Fail(ErrorCode::kInternal, "netlink: out of memory");
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(socket->get(), tap->get(), change.get(), 0); err < 0) {
    return Fail(ErrorCode::kInternal, "set " + name + " up: " + NlErrorText(err));
  }
  return {};
}

}  // namespace

Result<Tap> Tap::Create(const std::string& name, const std::string& bridge, bool isolated_port) {
  if (!IsValidLinkName(name)) return Fail(ErrorCode::kInvalidArgument, "invalid tap name \"" + name + "\"");
  if (!IsValidLinkName(bridge)) return Fail(ErrorCode::kInvalidArgument, "invalid bridge name \"" + bridge + "\"");
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) return Fail(ErrnoError("open /dev/net/tun", errno));
  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), name.size());
  // IFF_TUN_EXCL: an existing interface of that name is an error (EBUSY)
  // rather than one we attach to, so we never take over someone else's tap.
  request.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL);
  if (::ioctl(fd.get(), TUNSETIFF, &request) < 0) {
    int err = errno;
    if (err == EBUSY || err == EEXIST) {
      return Fail(ErrorCode::kConflict, "an interface named " + name + " already exists");
    }
    return Fail(ErrnoError("create tap " + name, err));
  }
  Tap tap(std::move(fd), name);  // from here on, returning early removes the tap
  if (auto attached = Attach(name, bridge, isolated_port); !attached) {
    return Fail(attached.error().Wrap("tap " + name));
  }
  // Frames to reserved multicast MACs are handed to the tap's own stack, not
  // bridged: give that stack nothing to answer with.
  DisableIpv6(name);
  Log()->debug("tap {} on bridge {}{}", name, bridge, isolated_port ? ", isolated port" : "");
  return tap;
}

}  // namespace agentvm::net
