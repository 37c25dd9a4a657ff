#include "netsetup/conntrack.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace agentvm::net {
namespace {

struct HandleCloser {
  void operator()(nfct_handle* handle) const { nfct_close(handle); }
};
struct ConntrackFree {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
struct FilterFree {
  void operator()(nfct_filter_dump* filter) const { nfct_filter_dump_destroy(filter); }
};
using Handle = std::unique_ptr<nfct_handle, HandleCloser>;
using Entry = std::unique_ptr<nf_conntrack, ConntrackFree>;

struct DumpState {
  std::uint32_t address;  // network byte order, as ctnetlink carries it
  std::vector<Entry> matches;
};

int CollectMatching(nf_conntrack_msg_type, nf_conntrack* ct, void* data) {
  auto* state = static_cast<DumpState*>(data);
  if (nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_SRC) == state->address ||
      nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST) == state->address) {
    // The callback's ct is the library's and freed after we return.
    if (nf_conntrack* copy = nfct_clone(ct)) state->matches.emplace_back(copy);
  }
  return NFCT_CB_CONTINUE;
}

}  // namespace

Result<std::size_t> ForgetConnections(Ipv4Address address) {
  Handle handle(nfct_open(CONNTRACK, 0));
  if (!handle) return Fail(ErrnoError("open ctnetlink", errno));

  // The kernel cannot filter a dump by address (only by mark and family),
  // so the whole IPv4 table is read and matched here, then the matches are
  // deleted: a query cannot be issued from inside a dump's callback.
  DumpState state{.address = htonl(address.value), .matches = {}};
  std::unique_ptr<nfct_filter_dump, FilterFree> filter(nfct_filter_dump_create());
  if (!filter) return Fail(ErrnoError("conntrack dump filter", errno));
  nfct_filter_dump_set_attr_u8(filter.get(), NFCT_FILTER_DUMP_L3NUM, AF_INET);
  nfct_callback_register(handle.get(), NFCT_T_ALL, CollectMatching, &state);
  if (nfct_query(handle.get(), NFCT_Q_DUMP_FILTER, filter.get()) < 0) {
    return Fail(ErrnoError("dump the conntrack table", errno));
  }
  nfct_callback_unregister(handle.get());

  std::size_t deleted = 0;
  for (const Entry& entry : state.matches) {
    if (nfct_query(handle.get(), NFCT_Q_DESTROY, entry.get()) == 0) {
      ++deleted;
    } else if (errno != ENOENT) {  // gone meanwhile (timed out, closed): fine
      return Fail(ErrnoError("delete a conntrack entry of " + address.ToString(), errno));
    }
  }
  return deleted;
}

}  // namespace agentvm::net
