// Owning pointers for libnftnl objects (internal to netsetup/).
#pragma once

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <memory>

namespace agentvm::net {

struct NftnlDeleter {
  void operator()(nftnl_table* p) const { nftnl_table_free(p); }
  void operator()(nftnl_chain* p) const { nftnl_chain_free(p); }
  void operator()(nftnl_rule* p) const { nftnl_rule_free(p); }
  void operator()(nftnl_set* p) const { nftnl_set_free(p); }
  void operator()(nftnl_obj* p) const { nftnl_obj_free(p); }
  void operator()(nftnl_expr* p) const { nftnl_expr_free(p); }
};

using NftnlTable = std::unique_ptr<nftnl_table, NftnlDeleter>;
using NftnlChain = std::unique_ptr<nftnl_chain, NftnlDeleter>;
using NftnlRule = std::unique_ptr<nftnl_rule, NftnlDeleter>;
using NftnlSet = std::unique_ptr<nftnl_set, NftnlDeleter>;
using NftnlObj = std::unique_ptr<nftnl_obj, NftnlDeleter>;

}  // namespace agentvm::net
