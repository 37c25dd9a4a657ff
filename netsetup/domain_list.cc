#include "netsetup/domain_list.h"

#include <algorithm>

namespace agentvm::net {
namespace {

constexpr std::size_t kMaxNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

std::unexpected<Error> Invalid(std::string_view what, std::string_view text, const std::string& why) {
  // Only printable ASCII of the entry goes into the message.
  std::string shown;
  for (char c : text.substr(0, 80)) shown += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
  return Fail(ErrorCode::kInvalidArgument, std::string(what) + ": \"" + shown + "\" " + why);
}

bool LabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; }

// Empty when `name` (lower case) is a valid name, else why not.
std::string NameProblem(std::string_view name, std::size_t* labels) {
  *labels = 0;
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameLength) return "is longer than 253 characters";
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty()) return "has an empty label";
    if (label.size() > kMaxLabelLength) return "has a label longer than 63 characters";
    if (!std::all_of(label.begin(), label.end(), LabelChar)) {
      return "is not a domain name (letters, digits, '-' and '_' in dot-separated labels; a wildcard is *.name)";
    }
    if (label.front() == '-' || label.back() == '-') return "has a label starting or ending with '-'";
    ++*labels;
    start = end + 1;
  }
  return "";
}

}  // namespace

std::string NormalizeDomainName(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  return lower;
}

Result<std::string> CanonicalDomainPattern(std::string_view text, std::string_view what) {
  std::string pattern = NormalizeDomainName(text);
  const bool wildcard = pattern.starts_with("*.");
  std::string_view name = wildcard ? std::string_view(pattern).substr(2) : std::string_view(pattern);
  std::size_t labels = 0;
  if (std::string problem = NameProblem(name, &labels); !problem.empty()) return Invalid(what, text, problem);
  if (wildcard && labels < 2) {
    return Invalid(what, text, "would admit a whole top-level domain; name at least two labels after \"*.\"");
  }
  return pattern;
}

Result<std::vector<std::string>> CanonicalDomainPatterns(const std::vector<std::string>& entries,
                                                         std::string_view what) {
  if (entries.size() > kMaxAllowedDomains) {
    return Fail(ErrorCode::kInvalidArgument, std::string(what) + " lists " + std::to_string(entries.size()) +
                                                 " names; at most " + std::to_string(kMaxAllowedDomains) +
                                                 " are allowed");
  }
  std::vector<std::string> canonical;
  std::set<std::string> seen;
  for (const std::string& entry : entries) {
    auto pattern = CanonicalDomainPattern(entry, what);
    if (!pattern) return Fail(pattern.error());
    if (!seen.insert(*pattern).second) return Invalid(what, entry, "is listed twice");
    canonical.push_back(std::move(*pattern));
  }
  return canonical;
}

DomainList::DomainList(const std::vector<std::string>& patterns) {
  for (const std::string& pattern : patterns) {
    if (pattern.starts_with("*.")) {
      suffixes_.push_back(pattern.substr(1));
    } else {
      exact_.insert(pattern);
    }
  }
}

bool DomainList::Admits(std::string_view name) const {
  const std::string normal = NormalizeDomainName(name);
  if (exact_.contains(normal)) return true;
  return std::any_of(suffixes_.begin(), suffixes_.end(), [&](const std::string& suffix) {
    return normal.size() > suffix.size() && normal.ends_with(suffix);
  });
}

}  // namespace agentvm::net
