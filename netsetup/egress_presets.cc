#include "netsetup/egress_presets.h"

#include <algorithm>
#include <set>

#include "netsetup/domain_list.h"

namespace agentvm::net {
namespace {

std::unexpected<Error> Invalid(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

// What each tool's vendor documents as the endpoints it needs. Kept to what
// the tool itself talks to: package registries are their own presets, so a
// VM names what it installs from (`--preset claude-code --preset pypi`).
std::vector<EgressPreset> MakeBuiltins() {
  std::vector<EgressPreset> presets{
      // Claude Code: the allowlist of Anthropic's reference devcontainer
      // (github.com/anthropics/claude-code .devcontainer/init-firewall.sh)
      // and the hosts of docs.anthropic.com/en/docs/claude-code/network-config
      // (API, login, telemetry and error reporting); it installs and updates
      // itself from the npm registry.
      {"claude-code",
       "builtin",
       {"api.anthropic.com", "console.anthropic.com", "claude.ai", "statsig.anthropic.com", "statsig.com",
        "sentry.io", "registry.npmjs.org"}},
      // Codex CLI: github.com/openai/codex docs (authentication.md, config.md):
      // the API, the ChatGPT sign-in (auth.openai.com) and the ChatGPT backend
      // a ChatGPT-plan login talks to.
      {"codex", "builtin", {"api.openai.com", "auth.openai.com", "chatgpt.com"}},
      // GitHub: docs.github.com "About GitHub's IP addresses" and the
      // domains GitHub lists for allowlisting (git and web on github.com,
      // the REST API, archive downloads, release uploads, raw files, release
      // assets and avatars under githubusercontent.com).
      {"github",
       "builtin",
       {"github.com", "api.github.com", "codeload.github.com", "uploads.github.com", "*.githubusercontent.com"}},
      // npm: docs.npmjs.com, the public registry (tarballs come from the
      // same host).
      {"npm", "builtin", {"registry.npmjs.org"}},
      // PyPI: docs.pypi.org and pip's docs: the index and the file host.
      {"pypi", "builtin", {"pypi.org", "files.pythonhosted.org"}},
      // Debian: wiki.debian.org/SourcesList, the sources.list of a Debian 12
      // install (the CDN mirror and the security archive).
      {"debian", "builtin", {"deb.debian.org", "security.debian.org"}},
  };
  std::sort(presets.begin(), presets.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return presets;
}

std::string KnownNames(const std::vector<EgressPreset>& presets) {
  std::string names;
  for (const EgressPreset& preset : presets) names += (names.empty() ? "" : ", ") + preset.name;
  return names;
}

}  // namespace

Result<void> ValidatePresetName(std::string_view name, std::string_view what) {
  auto valid_char = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  bool ok = !name.empty() && name.size() <= kMaxPresetNameBytes && name.front() >= 'a' && name.front() <= 'z' &&
            name.back() != '-' && std::all_of(name.begin(), name.end(), valid_char);
  if (!ok) {
    return Invalid(std::string(what) + ": \"" + QuoteForError(name.substr(0, 80)) +
                   "\" is not a preset name (1-32 characters of a-z, 0-9 and '-', starting with a letter)");
  }
  return {};
}

const std::vector<EgressPreset>& BuiltinEgressPresets() {
  static const std::vector<EgressPreset> builtins = MakeBuiltins();
  return builtins;
}

EgressPresets::EgressPresets() : presets_(BuiltinEgressPresets()) {}

Result<EgressPresets> EgressPresets::Make(const std::map<std::string, std::vector<std::string>>& operator_presets) {
  if (operator_presets.size() > kMaxOperatorPresets) {
    return Invalid("egress_presets defines " + std::to_string(operator_presets.size()) + " presets; at most " +
                   std::to_string(kMaxOperatorPresets) + " are allowed");
  }
  EgressPresets presets;
  for (const auto& [name, domains] : operator_presets) {
    const std::string where = "egress_presets." + QuoteForError(name.substr(0, 80));
    if (auto valid = ValidatePresetName(name, "egress_presets"); !valid) return Fail(valid.error());
    if (presets.Find(name)) {
      return Invalid(where + " has the name of a built-in preset; give your list another name (built-ins: " +
                     KnownNames(BuiltinEgressPresets()) + ")");
    }
    if (domains.empty()) return Invalid(where + " lists no names");
    auto canonical = CanonicalDomainPatterns(domains, where);
    if (!canonical) return Fail(canonical.error());
    presets.presets_.push_back({name, "config", std::move(*canonical)});
  }
  return presets;
}

const EgressPreset* EgressPresets::Find(std::string_view name) const {
  for (const EgressPreset& preset : presets_) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

std::vector<std::string> MergeDomainLists(const std::vector<std::string>& first,
                                          const std::vector<std::string>& second) {
  std::vector<std::string> merged = first;
  std::set<std::string_view> seen(first.begin(), first.end());
  for (const std::string& name : second) {
    if (seen.insert(name).second) merged.push_back(name);
  }
  return merged;
}

Result<std::vector<std::string>> EgressPresets::Expand(const std::vector<std::string>& presets,
                                                       const std::vector<std::string>& allow_domains,
                                                       std::string_view what) const {
  if (presets.size() > kMaxPresetsPerVm) {
    return Invalid(std::string(what) + " lists " + std::to_string(presets.size()) + " presets; at most " +
                   std::to_string(kMaxPresetsPerVm) + " are allowed");
  }
  std::vector<std::string> expanded;
  std::set<std::string> seen;
  std::set<std::string> named;
  for (const std::string& name : presets) {
    if (auto valid = ValidatePresetName(name, what); !valid) return Fail(valid.error());
    if (!named.insert(name).second) return Invalid(std::string(what) + ": \"" + name + "\" is listed twice");
    const EgressPreset* preset = Find(name);
    if (!preset) {
      return Fail(ErrorCode::kInvalidArgument, std::string(what) + ": no preset \"" + name +
                                                   "\" (known: " + KnownNames(presets_) + ")");
    }
    for (const std::string& domain : preset->domains) {
      if (seen.insert(domain).second) expanded.push_back(domain);
    }
  }
  if (const std::size_t total = MergeDomainLists(allow_domains, expanded).size(); total > kMaxAllowedDomains) {
    return Invalid(std::string(what) + " and allow_domains come to " + std::to_string(total) +
                   " names; at most " + std::to_string(kMaxAllowedDomains) + " are allowed");
  }
  return expanded;
}

}  // namespace agentvm::net
