// DomainList: the names a domain-filtered VM may resolve (issue 12). Entries
// are exact names ("api.anthropic.com") or wildcards ("*.githubusercontent.com")
// that admit every name strictly below the suffix, never the suffix itself:
// "*.zone.test" admits "a.zone.test" and "b.a.zone.test", not "zone.test" and
// not "zone.test.evil.test". Names compare case-insensitively, without a
// trailing dot. Pure.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace agentvm::net {

inline constexpr std::size_t kMaxAllowedDomains = 256;

// One entry in canonical form (lower case, no trailing dot), or
// kInvalidArgument naming `what` with a message a user can act on. A name is
// 1-253 characters of labels of 1-63 [a-z0-9-_] characters, none starting or
// ending with '-'; a wildcard is "*." followed by a name of at least two
// labels ("*.com" would admit a whole top-level domain).
Result<std::string> CanonicalDomainPattern(std::string_view text, std::string_view what);

// Canonical entries, at most kMaxAllowedDomains, none listed twice.
Result<std::vector<std::string>> CanonicalDomainPatterns(const std::vector<std::string>& entries,
                                                         std::string_view what);

class DomainList {
 public:
  DomainList() = default;
  // `patterns` must be canonical (CanonicalDomainPatterns).
  explicit DomainList(const std::vector<std::string>& patterns);

  // `name` as it came in a query: any case, with or without the final dot.
  bool Admits(std::string_view name) const;
  std::size_t size() const { return exact_.size() + suffixes_.size(); }

 private:
  std::set<std::string, std::less<>> exact_;
  std::vector<std::string> suffixes_;  // ".zone.test" for "*.zone.test"
};

// `name` lower-cased, without one trailing dot.
std::string NormalizeDomainName(std::string_view name);

}  // namespace agentvm::net
