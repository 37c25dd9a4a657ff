#include "supervisor/api/request_validation.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

#include "netsetup/domain_list.h"
#include "netsetup/egress_presets.h"
#include "protocol/frame.h"
#include "supervisor/api/encoding.h"
#include "supervisor/api/json_codec.h"
#include "supervisor/vm_mounts.h"

namespace agentvm::api {
namespace {

using nlohmann::json;

std::unexpected<Error> Invalid(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

// "unknown <what> \"<prefix><key>\"" for the first key of `entries` (JSON
// object items or query parameters) not among `known`. `prefix` names the
// enclosing object ("network.").
template <class Entries>
Result<void> RejectUnknown(const Entries& entries, std::initializer_list<std::string_view> known,
                           std::string_view what, std::string_view prefix = {}) {
  for (const auto& [key, value] : entries) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return Invalid("unknown " + std::string(what) + " \"" + std::string(prefix) + QuoteForError(key) + "\"");
    }
  }
  return {};
}

Result<void> RejectUnknownFields(const json& object, std::initializer_list<std::string_view> known,
                                 std::string_view prefix = {}) {
  return RejectUnknown(object.items(), known, "field", prefix);
}

Result<int> IntField(const json& object, const char* name, int min, int max) {
  const json& value = object.at(name);
  if (!value.is_number_integer()) return Invalid(std::string(name) + " must be an integer");
  auto number = value.get<std::int64_t>();
  if (value.is_number_unsigned() && value.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
    number = static_cast<std::int64_t>(max) + 1;
  }
  if (number < min || number > max) {
    return Invalid(std::string(name) + " must be between " + std::to_string(min) + " and " +
                   std::to_string(max));
  }
  return static_cast<int>(number);
}

Result<std::string> StringField(const json& value, std::string_view name) {
  if (!value.is_string()) return Invalid(std::string(name) + " must be a string");
  return value.get<std::string>();
}

bool HasNul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

// A JSON value for an error message: short and printable.
std::string ShowJson(const json& value) {
  if (value.is_string()) return "\"" + QuoteForError(value.get_ref<const std::string&>()) + "\"";
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  return QuoteForError(value.dump());  // number, boolean or null
}

// The array's size is checked before its elements are, so a body of 200000
// ports costs one comparison.
Result<const json*> BoundedArray(const json& object, const char* name, std::size_t max,
                                 std::string_view what) {
  const json& value = object.at(name);
  std::string field = std::string("network.") + name;
  if (!value.is_array()) return Invalid(field + " must be an array of " + std::string(what));
  if (value.size() > max) {
    return Invalid(field + " lists " + std::to_string(value.size()) + " entries; at most " +
                   std::to_string(max) + " are allowed");
  }
  return &value;
}

Result<NetworkRequest> ParseNetworkObject(const json& object) {
  if (!object.is_object()) return Invalid("network must be an object");
  if (auto ok = RejectUnknownFields(object, {"mode", "allow_tcp_ports", "allow_cidrs", "allow_domains", "presets",
                                             "bridge", "bandwidth_bytes_per_sec"},
                                    "network.");
      !ok) {
    return Fail(ok.error());
  }
  NetworkRequest request;
  if (object.contains("mode")) {
    const json& mode = object.at("mode");
    auto parsed = mode.is_string() ? NetworkModeFromName(mode.get<std::string>()) : std::nullopt;
    if (!parsed) {
      return Invalid("network.mode must be one of \"nat-filtered\", \"isolated\", \"bridge\"; got " +
                     ShowJson(mode));
    }
    request.mode = *parsed;
  }
  if (object.contains("allow_tcp_ports")) {
    auto ports = BoundedArray(object, "allow_tcp_ports", kMaxAllowedTcpPorts, "TCP ports");
    if (!ports) return Fail(ports.error());
    for (std::size_t i = 0; i < (*ports)->size(); ++i) {
      const json& port = (**ports)[i];
      bool ok = port.is_number_integer() && port.get<std::int64_t>() >= 1 &&
                port.get<std::int64_t>() <= 65535 &&
                !(port.is_number_unsigned() && port.get<std::uint64_t>() > 65535);
      if (!ok) {
        return Invalid("network.allow_tcp_ports[" + std::to_string(i) +
                       "] must be an integer between 1 and 65535; got " + ShowJson(port));
      }
      request.allow_tcp_ports.push_back(static_cast<std::uint16_t>(port.get<std::int64_t>()));
    }
  }
  if (object.contains("allow_cidrs")) {
    auto cidrs = BoundedArray(object, "allow_cidrs", kMaxAllowedCidrs, "strings");
    if (!cidrs) return Fail(cidrs.error());
    for (std::size_t i = 0; i < (*cidrs)->size(); ++i) {
      const json& cidr = (**cidrs)[i];
      std::string field = "network.allow_cidrs[" + std::to_string(i) + "]";
      if (!cidr.is_string()) return Invalid(field + " must be a string; got " + ShowJson(cidr));
      auto canonical = CanonicalCidr(cidr.get<std::string>(), field);
      if (!canonical) return Fail(canonical.error());
      request.allow_cidrs.push_back(std::move(*canonical));
    }
  }
  if (object.contains("allow_domains")) {
    auto domains = BoundedArray(object, "allow_domains", net::kMaxAllowedDomains, "strings");
    if (!domains) return Fail(domains.error());
    for (std::size_t i = 0; i < (*domains)->size(); ++i) {
      const json& domain = (**domains)[i];
      std::string field = "network.allow_domains[" + std::to_string(i) + "]";
      if (!domain.is_string()) return Invalid(field + " must be a string; got " + ShowJson(domain));
      auto canonical = net::CanonicalDomainPattern(domain.get<std::string>(), field);
      if (!canonical) return Fail(canonical.error());
      request.allow_domains.push_back(std::move(*canonical));
    }
  }
  if (object.contains("presets")) {
    auto presets = BoundedArray(object, "presets", net::kMaxPresetsPerVm, "preset names");
    if (!presets) return Fail(presets.error());
    for (std::size_t i = 0; i < (*presets)->size(); ++i) {
      const json& preset = (**presets)[i];
      std::string field = "network.presets[" + std::to_string(i) + "]";
      if (!preset.is_string()) return Invalid(field + " must be a string; got " + ShowJson(preset));
      if (auto valid = net::ValidatePresetName(preset.get<std::string>(), field); !valid) return Fail(valid.error());
      request.presets.push_back(preset.get<std::string>());
    }
  }
  if (object.contains("bridge")) {
    auto bridge = StringField(object.at("bridge"), "network.bridge");
    if (!bridge) return Fail(bridge.error());
    if (auto ok = ValidateInterfaceName(*bridge, "network.bridge"); !ok) return Fail(ok.error());
    request.bridge = std::move(*bridge);
  }
  if (object.contains("bandwidth_bytes_per_sec")) {
    const json& rate = object.at("bandwidth_bytes_per_sec");
    // The range itself is ValidateNetworkRequest's, shared with the CLI.
    bool negative = rate.is_number_integer() && !rate.is_number_unsigned() &&
                    rate.get<std::int64_t>() < 0;
    if (!rate.is_number_integer() || negative) {
      return Invalid("network.bandwidth_bytes_per_sec must be an integer between " +
                     std::to_string(kMinBandwidthBytesPerSec) + " and " +
                     std::to_string(kMaxBandwidthBytesPerSec) + " (bytes per second); got " +
                     ShowJson(rate));
    }
    request.bandwidth_bytes_per_sec = rate.is_number_unsigned()
                                          ? rate.get<std::uint64_t>()
                                          : static_cast<std::uint64_t>(rate.get<std::int64_t>());
  }
  if (auto ok = ValidateNetworkRequest(request); !ok) return Fail(ok.error());
  return request;
}

}  // namespace

Result<void> ValidateGuestPath(std::string_view path, std::string_view what) {
  std::string field(what);
  if (path.empty() || path.front() != '/') return Invalid(field + " must be an absolute path");
  if (path.size() > kMaxGuestPathBytes) {
    return Invalid(field + " is longer than " + std::to_string(kMaxGuestPathBytes) + " bytes");
  }
  if (HasNul(path)) return Invalid(field + " contains a NUL byte");
  std::string_view rest = path;
  while (!rest.empty()) {
    auto slash = rest.find('/');
    if (rest.substr(0, slash) == "..") return Invalid(field + " must not contain \"..\"");
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return {};
}

Result<void> ValidateEnvName(std::string_view name) {
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  bool ok = !name.empty() && letter(name[0]);
  for (char c : name) ok = ok && (letter(c) || (c >= '0' && c <= '9'));
  if (!ok) {
    return Invalid("invalid environment variable name \"" + QuoteForError(name) +
                   "\": expected [A-Za-z_][A-Za-z0-9_]*");
  }
  return {};
}

Result<json> ParseJsonObject(std::string_view body) {
  // On the raw text, so that a body of a million '[' never reaches the
  // recursive parts of the JSON library.
  if (protocol::NestsDeeperThan(body, kMaxJsonDepth)) {
    return Invalid("malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth));
  }
  json value;
  try {
    value = json::parse(body);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    if (auto bracket = what.find("] "); bracket != std::string::npos) what.erase(0, bracket + 2);
    return Invalid("malformed JSON: " + what);
  }
  if (!value.is_object()) return Invalid("request body must be a JSON object");
  return value;
}

Result<NetworkUpdate> ParseNetworkPatchBody(std::string_view body) {
  auto object = ParseJsonObject(body);
  if (!object) return Fail(object.error());
  // Mode and bridge are what the VM was made with; they cannot change live.
  if (auto ok = RejectUnknownFields(*object, {"allow_tcp_ports", "allow_cidrs", "allow_domains", "presets",
                                              "bandwidth_bytes_per_sec"},
                                    "network.");
      !ok) {
    return Fail(ok.error());
  }
  if (object->empty()) {
    return Invalid(
        "give at least one of allow_tcp_ports, allow_cidrs, allow_domains, presets, bandwidth_bytes_per_sec");
  }
  const bool unlimit = object->contains("bandwidth_bytes_per_sec") && object->at("bandwidth_bytes_per_sec").is_null();
  if (unlimit) object->erase("bandwidth_bytes_per_sec");
  auto parsed = ParseNetworkObject(*object);
  if (!parsed) return Fail(parsed.error());
  NetworkUpdate update;
  if (object->contains("allow_tcp_ports")) update.allow_tcp_ports = std::move(parsed->allow_tcp_ports);
  if (object->contains("allow_cidrs")) update.allow_cidrs = std::move(parsed->allow_cidrs);
  if (object->contains("allow_domains")) update.allow_domains = std::move(parsed->allow_domains);
  // The whole list, as at create: which presets exist is the service's to say.
  if (object->contains("presets")) update.presets = std::move(parsed->presets);
  if (object->contains("bandwidth_bytes_per_sec")) update.bandwidth_bytes_per_sec = parsed->bandwidth_bytes_per_sec;
  if (unlimit) update.bandwidth_bytes_per_sec = std::optional<std::uint64_t>();
  return update;
}

namespace {

// "mounts": [{"source": "/abs", "target": "/workspace", "readonly": false}];
// the shape only (vm_mounts.h): what the host allows, the daemon decides.
Result<std::vector<VmMount>> ParseMounts(const json& value) {
  if (!value.is_array()) return Invalid("mounts must be an array of {\"source\", \"target\", \"readonly\"}");
  std::vector<VmMount> mounts;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string field = "mounts[" + std::to_string(i) + "]";
    const json& item = value[i];
    if (!item.is_object()) return Invalid(field + " must be an object");
    if (auto ok = RejectUnknownFields(item, {"source", "target", "readonly"}, field + "."); !ok) return Fail(ok.error());
    VmMount mount;
    for (auto [key, slot] : {std::pair{"source", &mount.source}, std::pair{"target", &mount.target}}) {
      if (!item.contains(key)) return Invalid(field + "." + key + " is required");
      auto text = StringField(item.at(key), field + "." + key);
      if (!text) return Fail(text.error());
      *slot = std::move(*text);
    }
    if (item.contains("readonly")) {
      if (!item.at("readonly").is_boolean()) return Invalid(field + ".readonly must be true or false");
      mount.readonly = item.at("readonly").get<bool>();
    }
    mounts.push_back(std::move(mount));
  }
  if (auto ok = ValidateMounts(mounts); !ok) return Fail(ok.error());
  return mounts;
}

}  // namespace

Result<CreateVmRequest> ParseCreateVmBody(std::string_view body) {
  CreateVmRequest request;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return request;
  auto object = ParseJsonObject(body);
  if (!object) return Fail(object.error());
  if (auto ok = RejectUnknownFields(*object, {"image", "cpus", "memory_mib", "network", "boot", "mounts"});
      !ok) {
    return Fail(ok.error());
  }
  if (object->contains("image")) {
    auto image = StringField(object->at("image"), "image");
    if (!image) return Fail(image.error());
    if (auto ok = ValidateImageName(*image); !ok) return Fail(ok.error());
    request.image = std::move(*image);
  }
  if (object->contains("cpus")) {
    auto cpus = IntField(*object, "cpus", kMinCpus, kMaxCpus);
    if (!cpus) return Fail(cpus.error());
    request.cpus = *cpus;
  }
  if (object->contains("memory_mib")) {
    auto memory = IntField(*object, "memory_mib", kMinMemoryMib, kMaxMemoryMib);
    if (!memory) return Fail(memory.error());
    request.memory_mib = *memory;
  }
  if (object->contains("network")) {
    auto network = ParseNetworkObject(object->at("network"));
    if (!network) return Fail(network.error());
    request.network = std::move(*network);
  }
  if (object->contains("boot")) {
    const json& boot = object->at("boot");
    auto mode = boot.is_string() ? BootModeFromName(boot.get<std::string>()) : std::nullopt;
    if (!mode) {
      return Invalid("boot must be one of \"auto\", \"restore\", \"cold\"; got " + ShowJson(boot));
    }
    request.boot = *mode;
  }
  if (object->contains("mounts")) {
    auto mounts = ParseMounts(object->at("mounts"));
    if (!mounts) return Fail(mounts.error());
    request.mounts = std::move(*mounts);
  }
  return request;
}

Result<std::string> ParseSaveSnapshotBody(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Invalid("a body {\"name\": \"...\"} is required");
  }
  auto object = ParseJsonObject(body);
  if (!object) return Fail(object.error());
  if (auto ok = RejectUnknownFields(*object, {"name"}); !ok) return Fail(ok.error());
  if (!object->contains("name")) return Invalid("name is required");
  auto name = StringField(object->at("name"), "name");
  if (!name) return Fail(name.error());
  if (auto ok = ValidateSnapshotName(*name); !ok) return Fail(ok.error());
  return name;
}

Result<protocol::ExecRequest> ParseExecBody(std::string_view body) {
  auto object = ParseJsonObject(body);
  if (!object) return Fail(object.error());
  if (auto ok = RejectUnknownFields(*object, {"argv", "env", "cwd", "timeout_sec", "stdin", "stdin_b64",
                                              "user", "tty", "rows", "cols", "detach"});
      !ok) {
    return Fail(ok.error());
  }
  protocol::ExecRequest request;

  if (!object->contains("argv")) return Invalid("argv is required");
  const json& argv = object->at("argv");
  if (!argv.is_array() || argv.empty()) return Invalid("argv must be a non-empty array of strings");
  for (const json& arg : argv) {
    if (!arg.is_string()) return Invalid("argv must be a non-empty array of strings");
    auto text = arg.get<std::string>();
    if (HasNul(text)) return Invalid("argv contains a NUL byte");
    request.argv.push_back(std::move(text));
  }
  if (request.argv[0].empty()) return Invalid("argv[0] must not be empty");

  if (object->contains("env")) {
    const json& env = object->at("env");
    if (!env.is_object()) return Invalid("env must be an object of strings");
    for (const auto& [key, value] : env.items()) {
      if (auto ok = ValidateEnvName(key); !ok) return Fail(ok.error());
      if (!value.is_string()) return Invalid("env values must be strings");
      auto text = value.get<std::string>();
      if (HasNul(text)) return Invalid("env value of " + key + " contains a NUL byte");
      request.env[key] = std::move(text);
    }
  }

  if (object->contains("cwd")) {
    auto cwd = StringField(object->at("cwd"), "cwd");
    if (!cwd) return Fail(cwd.error());
    if (!cwd->empty()) {
      if (auto ok = ValidateGuestPath(*cwd, "cwd"); !ok) return Fail(ok.error());
    }
    request.cwd = std::move(*cwd);
  }

  if (object->contains("timeout_sec")) {
    const json& timeout = object->at("timeout_sec");
    if (!timeout.is_number()) return Invalid("timeout_sec must be a number");
    double seconds = timeout.get<double>();
    if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxExecTimeoutSec) {
      return Invalid("timeout_sec must be between 0 and " +
                     std::to_string(static_cast<int>(kMaxExecTimeoutSec)));
    }
    request.timeout = TimeoutFromSeconds(seconds);
  }

  bool has_stdin = object->contains("stdin");
  if (has_stdin && object->contains("stdin_b64")) {
    return Invalid("give stdin or stdin_b64, not both");
  }
  if (has_stdin) {
    auto text = StringField(object->at("stdin"), "stdin");
    if (!text) return Fail(text.error());
    request.stdin_data = std::move(*text);
  } else if (object->contains("stdin_b64")) {
    auto text = StringField(object->at("stdin_b64"), "stdin_b64");
    if (!text) return Fail(text.error());
    auto bytes = Base64Decode(*text);
    if (!bytes) return Invalid("stdin_b64 is not valid base64");
    request.stdin_data = std::move(*bytes);
  }

  if (object->contains("user")) {
    auto user = StringField(object->at("user"), "user");
    if (!user) return Fail(user.error());
    if (!protocol::IsValidExecUser(*user)) {
      return Invalid("user must be a user name ([A-Za-z0-9_.-], at most 32, not starting with '-') or a uid");
    }
    request.user = std::move(*user);
  }
  for (auto [name, flag] : {std::pair{"tty", &request.tty}, std::pair{"detach", &request.detach}}) {
    if (!object->contains(name)) continue;
    const json& value = object->at(name);
    if (!value.is_boolean()) return Invalid(std::string(name) + " must be true or false");
    *flag = value.get<bool>();
  }
  for (auto [name, slot] : {std::pair{"rows", &request.size.rows}, std::pair{"cols", &request.size.cols}}) {
    if (!object->contains(name)) continue;
    if (!request.tty) return Invalid(std::string(name) + " needs tty");
    auto value = IntField(*object, name, 1, 65535);
    if (!value) return Fail(value.error());
    *slot = static_cast<std::uint16_t>(*value);
  }
  return request;
}

Result<void> ExpectNoQuery(const QueryParams& query) { return RejectUnknown(query, {}, "query parameter"); }

namespace {

Result<void> RejectUnknownParams(const QueryParams& query, std::initializer_list<std::string_view> known) {
  return RejectUnknown(query, known, "query parameter");
}

Result<std::string> RequiredPath(const QueryParams& query) {
  auto it = query.find("path");
  if (it == query.end()) return Invalid("query parameter path is required");
  if (auto ok = ValidateGuestPath(it->second, "path"); !ok) return Fail(ok.error());
  return it->second;
}

}  // namespace

Result<protocol::ExecRequest> ParseExecQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"request"}); !ok) return Fail(ok.error());
  auto it = query.find("request");
  if (it == query.end()) return Invalid("the request query parameter (the exec request as JSON) is required");
  return ParseExecBody(it->second);
}

// ?NAME=true|false|1|0; `fallback` when absent.
Result<bool> ParseBoolParam(const QueryParams& query, const std::string& name, bool fallback) {
  auto it = query.find(name);
  if (it == query.end()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return Invalid(name + " must be true or false");
}

namespace {

// A sequence number parameter (0 when absent); "NAME must be WHOSE
// sequence number" otherwise.
Result<std::uint64_t> ParseSeqParam(const QueryParams& query, const std::string& name, const std::string& whose) {
  auto it = query.find(name);
  if (it == query.end()) return 0;
  std::uint64_t value = 0;
  const std::string& text = it->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Invalid(name + " must be " + whose + " sequence number");
  }
  return value;
}

}  // namespace

Result<bool> ParseDeleteQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"force"}); !ok) return Fail(ok.error());
  return ParseBoolParam(query, "force", false);
}

Result<EventsQuery> ParseEventsQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"vm", "type", "since", "follow"}); !ok) return Fail(ok.error());
  EventsQuery parsed;
  if (auto it = query.find("vm"); it != query.end()) {
    if (auto valid = ValidateVmId(it->second); !valid) return Fail(valid.error());
    parsed.vm = it->second;
  }
  if (auto it = query.find("type"); it != query.end()) {
    // Comma-separated: type=exec_started,exec_finished.
    const std::string& list = it->second;
    for (std::size_t start = 0; start <= list.size();) {
      std::size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      const std::string type = list.substr(start, end - start);
      const bool ok = !type.empty() && type.size() <= 32 && parsed.types.size() < kMaxEventTypes &&
                      std::all_of(type.begin(), type.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
      if (!ok) return Invalid("type must be event types such as started or exec_finished, comma-separated");
      parsed.types.push_back(type);
      start = end + 1;
    }
  }
  if (query.contains("since")) {
    auto since = ParseSeqParam(query, "since", "an event");
    if (!since) return Fail(since.error());
    parsed.since = *since;
  }
  auto follow = ParseBoolParam(query, "follow", true);
  if (!follow) return Fail(follow.error());
  parsed.follow = *follow;
  return parsed;
}

Result<EgressQuery> ParseEgressQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"after", "follow"}); !ok) return Fail(ok.error());
  EgressQuery parsed;
  auto after = ParseSeqParam(query, "after", "an egress log");
  if (!after) return Fail(after.error());
  parsed.after = *after;
  auto follow = ParseBoolParam(query, "follow", false);
  if (!follow) return Fail(follow.error());
  parsed.follow = *follow;
  return parsed;
}

Result<PutFileParams> ParsePutFileQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"path", "mode"}); !ok) return Fail(ok.error());
  PutFileParams params;
  auto path = RequiredPath(query);
  if (!path) return Fail(path.error());
  params.path = std::move(*path);
  if (auto it = query.find("mode"); it != query.end()) {
    const std::string& text = it->second;
    bool ok = !text.empty() && text.size() <= 5;
    std::uint32_t mode = 0;
    for (char c : text) {
      ok = ok && c >= '0' && c <= '7';
      mode = mode * 8 + static_cast<std::uint32_t>(c - '0');
    }
    if (!ok || mode > 07777) return Invalid("mode must be octal between 0 and 07777");
    params.mode = mode;
  }
  return params;
}

Result<std::string> ParseGetFileQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"path"}); !ok) return Fail(ok.error());
  return RequiredPath(query);
}

Result<std::size_t> ParseConsoleQuery(const QueryParams& query) {
  if (auto ok = RejectUnknownParams(query, {"max_bytes"}); !ok) return Fail(ok.error());
  auto it = query.find("max_bytes");
  if (it == query.end()) return kDefaultConsoleBytes;
  const std::string& text = it->second;
  bool ok = !text.empty() && text.size() <= 9;
  std::size_t value = 0;
  for (char c : text) {
    ok = ok && c >= '0' && c <= '9';
    value = value * 10 + static_cast<std::size_t>(c - '0');
  }
  if (!ok || value == 0 || value > kMaxConsoleBytes) {
    return Invalid("max_bytes must be between 1 and " + std::to_string(kMaxConsoleBytes));
  }
  return value;
}

}  // namespace agentvm::api
