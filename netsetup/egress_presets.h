// EgressPresets: named domain lists a VM's allowlist can be built from
// (issue 12): `--preset claude-code` instead of spelling out the endpoints a
// tool's vendor documents. Built-in presets are compiled in
// (egress_presets.cc cites the source of each list); operators add their own
// in the daemon's YAML (`egress_presets:`). An operator preset may not reuse
// a built-in name: a VM created with `--preset github` gets the same names
// on every host, and an operator who wants a different list gives it a
// different name.
//
// A preset expands when it is given to a VM (at create or in a live
// change); the VM keeps the names apart from its own allow_domains
// (NetworkInfo::preset_domains), so that taking the preset off takes off
// only its names. Pure.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace agentvm::net {

inline constexpr std::size_t kMaxPresetNameBytes = 32;
inline constexpr std::size_t kMaxOperatorPresets = 64;
inline constexpr std::size_t kMaxPresetsPerVm = 16;

struct EgressPreset {
  std::string name;
  std::string source;  // "builtin" or "config"
  std::vector<std::string> domains;  // canonical (domain_list.h)
};

// A preset name is 1-32 characters of [a-z0-9-], starting with a letter and
// not ending with '-'. kInvalidArgument naming `what` otherwise.
Result<void> ValidatePresetName(std::string_view name, std::string_view what);

// The compiled-in presets, sorted by name.
const std::vector<EgressPreset>& BuiltinEgressPresets();

// `first` followed by the names of `second` it lacks: the list a VM may
// resolve, from its own names and its presets'.
std::vector<std::string> MergeDomainLists(const std::vector<std::string>& first,
                                          const std::vector<std::string>& second);

class EgressPresets {
 public:
  // The built-ins only.
  EgressPresets();
  // The built-ins plus the operator's (`egress_presets:` in the YAML): at
  // most kMaxOperatorPresets, each a valid name that is not a built-in's,
  // with 1..256 valid domain patterns (canonicalized here, none twice).
  // kInvalidArgument naming "egress_presets.<name>" otherwise.
  static Result<EgressPresets> Make(const std::map<std::string, std::vector<std::string>>& operator_presets);

  // Built-ins first, then the operator's, each sorted by name.
  const std::vector<EgressPreset>& all() const { return presets_; }
  const EgressPreset* Find(std::string_view name) const;

  // The names the presets stand for, in order, each once (a VM keeps them
  // apart from its own allow_domains, so that dropping a preset drops only
  // its names). kInvalidArgument for an unknown preset (naming the known
  // ones), a preset named twice, more than kMaxPresetsPerVm, or more than
  // kMaxAllowedDomains names together with `allow_domains` (canonical);
  // `what` names the presets field.
  Result<std::vector<std::string>> Expand(const std::vector<std::string>& presets,
                                          const std::vector<std::string>& allow_domains,
                                          std::string_view what) const;

 private:
  std::vector<EgressPreset> presets_;
};

}  // namespace agentvm::net
