#include "supervisor/api/json_codec.h"

#include <cmath>
#include <cstdint>

#include "supervisor/api/encoding.h"

namespace agentvm::api {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::unexpected<Error> Malformed(std::string what) {
  return Fail(ErrorCode::kInternal, "malformed response from agentvmd: " + std::move(what));
}

std::optional<int> OptionalInt(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int>();
}

std::string OptionalString(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::optional<std::uint64_t> NonNegative(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

std::optional<std::uint64_t> OptionalUnsigned(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return std::nullopt;
  return NonNegative(*it);
}

// The strings of an array member; none when it is missing or not an array.
std::vector<std::string> StringList(const json& object, const char* key) {
  std::vector<std::string> list;
  if (auto array = object.find(key); array != object.end() && array->is_array()) {
    for (const json& item : *array) {
      if (item.is_string()) list.push_back(item.get<std::string>());
    }
  }
  return list;
}

bool HasNetworkRequest(const NetworkRequest& network) {
  return network.mode || !network.allow_tcp_ports.empty() || !network.allow_cidrs.empty() ||
         !network.allow_domains.empty() || !network.presets.empty() ||
         !network.bridge.empty() || network.bandwidth_bytes_per_sec;
}

}  // namespace

ordered_json NetworkInfoToJson(const NetworkInfo& network) {
  return ordered_json{
      {"mode", NetworkModeName(network.mode)},
      {"address", network.address},
      {"gateway", network.gateway},
      {"dns", network.dns},
      {"mac", network.mac},
      {"tap", network.tap},
      {"bridge", network.bridge},
      {"allow_tcp_ports", network.allow_tcp_ports},
      {"allow_cidrs", network.allow_cidrs},
      {"allow_domains", network.allow_domains},
      {"presets", network.presets},
      {"preset_domains", network.preset_domains},
      {"bandwidth_bytes_per_sec", network.bandwidth_bytes_per_sec
                                      ? ordered_json(*network.bandwidth_bytes_per_sec)
                                      : ordered_json(nullptr)},
      {"dropped_connections", network.dropped_connections},
      {"dns_queries", network.dns_queries}};
}

Result<NetworkInfo> NetworkInfoFromJson(const json& value) {
  NetworkInfo network;
  if (!value.is_object()) return Malformed("VM network is not an object");
  auto mode = value.find("mode");
  if (mode == value.end() || !mode->is_string()) return Malformed("VM network without a mode");
  auto parsed_mode = NetworkModeFromName(mode->get<std::string>());
  if (!parsed_mode) return Malformed("unknown network mode \"" + mode->get<std::string>() + "\"");
  network.mode = *parsed_mode;
  network.address = OptionalString(value, "address");
  network.gateway = OptionalString(value, "gateway");
  network.dns = OptionalString(value, "dns");
  network.mac = OptionalString(value, "mac");
  network.tap = OptionalString(value, "tap");
  network.bridge = OptionalString(value, "bridge");
  if (auto ports = value.find("allow_tcp_ports"); ports != value.end() && ports->is_array()) {
    for (const json& port : *ports) {
      auto number = NonNegative(port);
      if (number && *number <= 65535) {
        network.allow_tcp_ports.push_back(static_cast<std::uint16_t>(*number));
      }
    }
  }
  network.allow_cidrs = StringList(value, "allow_cidrs");
  network.allow_domains = StringList(value, "allow_domains");
  network.presets = StringList(value, "presets");
  network.preset_domains = StringList(value, "preset_domains");
  network.bandwidth_bytes_per_sec = OptionalUnsigned(value, "bandwidth_bytes_per_sec");
  network.dropped_connections = OptionalUnsigned(value, "dropped_connections").value_or(0);
  if (auto verdicts = value.find("dns_queries"); verdicts != value.end() && verdicts->is_object()) {
    for (const auto& [verdict, count] : verdicts->items()) {
      if (auto number = NonNegative(count)) network.dns_queries[verdict] = *number;
    }
  }
  return network;
}


Result<VmState> ParseVmState(std::string_view name) {
  if (auto state = VmStateFromName(name)) return *state;
  return Fail(ErrorCode::kInvalidArgument, "unknown VM state \"" + std::string(name) + "\"");
}

namespace {

ordered_json MountsToJson(const std::vector<VmMount>& mounts) {
  ordered_json list = ordered_json::array();
  for (const VmMount& mount : mounts) {
    list.push_back({{"source", mount.source}, {"target", mount.target}, {"readonly", mount.readonly}});
  }
  return list;
}

}  // namespace

ordered_json VmInfoToJson(const VmInfo& info) {
  ordered_json json{{"id", info.id},
              {"image", info.image},
              {"state", VmStateName(info.state)},
              {"cpus", info.cpus},
              {"memory_mib", info.memory_mib},
              {"pid", info.pid ? ordered_json(*info.pid) : ordered_json(nullptr)},
              {"channel", info.channel},
              {"accel", info.accel},
              {"reason", info.reason},
              {"created_at", info.created_at},
              {"boot", info.boot},
              {"restore_error", info.restore_error},
              {"pool", info.pool},
              {"guest_channel_error", info.guest_channel_error},
              {"network", NetworkInfoToJson(info.network)}};
  // Only VMs that have mounts list them, so the answer for others is as before.
  if (!info.mounts.empty()) json["mounts"] = MountsToJson(info.mounts);
  if (info.mount_owner) json["mount_owner"] = {{"uid", info.mount_owner->uid}, {"gid", info.mount_owner->gid}};
  return json;
}

Result<VmInfo> VmInfoFromJson(const json& value) {
  if (!value.is_object()) return Malformed("VM is not an object");
  auto id = value.find("id");
  auto state = value.find("state");
  if (id == value.end() || !id->is_string()) return Malformed("VM without an id");
  if (state == value.end() || !state->is_string()) return Malformed("VM without a state");
  VmInfo info;
  info.id = id->get<std::string>();
  auto parsed_state = ParseVmState(state->get<std::string>());
  if (!parsed_state) return Malformed(parsed_state.error().message);
  info.state = *parsed_state;
  info.image = OptionalString(value, "image");
  info.cpus = OptionalInt(value, "cpus").value_or(0);
  info.memory_mib = OptionalInt(value, "memory_mib").value_or(0);
  info.pid = OptionalInt(value, "pid");
  info.channel = OptionalString(value, "channel");
  info.accel = OptionalString(value, "accel");
  info.reason = OptionalString(value, "reason");
  if (auto it = value.find("created_at"); it != value.end() && it->is_number_integer()) {
    info.created_at = it->get<std::int64_t>();
  }
  info.boot = OptionalString(value, "boot");
  info.restore_error = OptionalString(value, "restore_error");
  info.pool = OptionalString(value, "pool");
  info.guest_channel_error = OptionalString(value, "guest_channel_error");
  if (auto it = value.find("mounts"); it != value.end() && it->is_array()) {
    for (const json& mount : *it) {
      if (!mount.is_object()) return Malformed("a mount is not an object");
      info.mounts.push_back(VmMount{.source = OptionalString(mount, "source"),
                                    .target = OptionalString(mount, "target"),
                                    .readonly = mount.value("readonly", false)});
    }
  }
  if (auto it = value.find("mount_owner"); it != value.end() && it->is_object()) {
    auto uid = OptionalInt(*it, "uid"), gid = OptionalInt(*it, "gid");
    if (uid && gid && *uid >= 0 && *gid >= 0) {
      info.mount_owner = UserIds{.uid = static_cast<std::uint32_t>(*uid), .gid = static_cast<std::uint32_t>(*gid)};
    }
  }
  // A daemon without networking sends no "network": the VM has none.
  if (auto it = value.find("network"); it != value.end()) {
    auto network = NetworkInfoFromJson(*it);
    if (!network) return Fail(network.error());
    info.network = std::move(*network);
  }
  return info;
}

ordered_json VmListToJson(const std::vector<VmInfo>& vms) {
  ordered_json list = ordered_json::array();
  for (const VmInfo& info : vms) list.push_back(VmInfoToJson(info));
  return ordered_json{{"vms", std::move(list)}};
}

Result<std::vector<VmInfo>> VmListFromJson(const json& value) {
  if (!value.is_object() || !value.contains("vms") || !value.at("vms").is_array()) {
    return Malformed("expected {\"vms\": [...]}");
  }
  std::vector<VmInfo> vms;
  for (const json& item : value.at("vms")) {
    auto info = VmInfoFromJson(item);
    if (!info) return Fail(info.error());
    vms.push_back(std::move(*info));
  }
  return vms;
}

ordered_json SnapshotInfoToJson(const SnapshotInfo& info) {
  return ordered_json{{"name", info.name},
                      {"vm_state_bytes", info.vm_state_bytes},
                      {"created_at", info.created_at}};
}

Result<SnapshotInfo> SnapshotInfoFromJson(const json& value) {
  if (!value.is_object()) return Malformed("snapshot is not an object");
  auto name = value.find("name");
  if (name == value.end() || !name->is_string()) return Malformed("snapshot without a name");
  SnapshotInfo info;
  info.name = name->get<std::string>();
  info.vm_state_bytes = OptionalUnsigned(value, "vm_state_bytes").value_or(0);
  if (auto it = value.find("created_at"); it != value.end() && it->is_number_integer()) {
    info.created_at = it->get<std::int64_t>();
  }
  return info;
}

ordered_json SnapshotListToJson(const std::vector<SnapshotInfo>& snapshots) {
  ordered_json list = ordered_json::array();
  for (const SnapshotInfo& info : snapshots) list.push_back(SnapshotInfoToJson(info));
  return ordered_json{{"snapshots", std::move(list)}};
}

Result<std::vector<SnapshotInfo>> SnapshotListFromJson(const json& value) {
  if (!value.is_object() || !value.contains("snapshots") || !value.at("snapshots").is_array()) {
    return Malformed("expected {\"snapshots\": [...]}");
  }
  std::vector<SnapshotInfo> snapshots;
  for (const json& item : value.at("snapshots")) {
    auto info = SnapshotInfoFromJson(item);
    if (!info) return Fail(info.error());
    snapshots.push_back(std::move(*info));
  }
  return snapshots;
}

ordered_json PoolInfoToJson(const PoolInfo& info) {
  return ordered_json{{"name", info.name},
                      {"image", info.image},
                      {"cpus", info.cpus},
                      {"memory_mib", info.memory_mib},
                      {"network", NetworkModeName(info.network)},
                      {"min_ready", info.min_ready},
                      {"max_total", info.max_total},
                      {"fill_parallelism", info.fill_parallelism},
                      {"ready", info.ready},
                      {"starting", info.starting},
                      {"in_use", info.in_use},
                      {"taken", info.taken},
                      {"replaced", info.replaced},
                      {"failed", info.failed},
                      {"golden_ready", info.golden_ready},
                      {"last_error", info.last_error}};
}

Result<PoolInfo> PoolInfoFromJson(const json& value) {
  if (!value.is_object()) return Malformed("pool is not an object");
  auto name = value.find("name");
  if (name == value.end() || !name->is_string()) return Malformed("pool without a name");
  PoolInfo info;
  info.name = name->get<std::string>();
  info.image = OptionalString(value, "image");
  info.cpus = OptionalInt(value, "cpus").value_or(0);
  info.memory_mib = OptionalInt(value, "memory_mib").value_or(0);
  std::string network = OptionalString(value, "network");
  auto mode = NetworkModeFromName(network);
  if (!mode) return Malformed("pool with unknown network mode \"" + network + "\"");
  info.network = *mode;
  info.min_ready = OptionalInt(value, "min_ready").value_or(0);
  info.max_total = OptionalInt(value, "max_total").value_or(0);
  info.fill_parallelism = OptionalInt(value, "fill_parallelism").value_or(1);
  info.ready = OptionalInt(value, "ready").value_or(0);
  info.starting = OptionalInt(value, "starting").value_or(0);
  info.in_use = OptionalInt(value, "in_use").value_or(0);
  info.taken = OptionalUnsigned(value, "taken").value_or(0);
  info.replaced = OptionalUnsigned(value, "replaced").value_or(0);
  info.failed = OptionalUnsigned(value, "failed").value_or(0);
  auto golden = value.find("golden_ready");
  info.golden_ready = golden != value.end() && golden->is_boolean() && golden->get<bool>();
  info.last_error = OptionalString(value, "last_error");
  return info;
}

ordered_json PoolListToJson(const std::vector<PoolInfo>& pools) {
  ordered_json list = ordered_json::array();
  for (const PoolInfo& info : pools) list.push_back(PoolInfoToJson(info));
  return ordered_json{{"pools", std::move(list)}};
}

Result<std::vector<PoolInfo>> PoolListFromJson(const json& value) {
  if (!value.is_object() || !value.contains("pools") || !value.at("pools").is_array()) {
    return Malformed("expected {\"pools\": [...]}");
  }
  std::vector<PoolInfo> pools;
  for (const json& item : value.at("pools")) {
    auto info = PoolInfoFromJson(item);
    if (!info) return Fail(info.error());
    pools.push_back(std::move(*info));
  }
  return pools;
}

ordered_json PresetListToJson(const std::vector<net::EgressPreset>& presets) {
  ordered_json list = ordered_json::array();
  for (const net::EgressPreset& preset : presets) {
    list.push_back({{"name", preset.name}, {"source", preset.source}, {"domains", preset.domains}});
  }
  return ordered_json{{"presets", std::move(list)}};
}

Result<std::vector<net::EgressPreset>> PresetListFromJson(const json& value) {
  if (!value.is_object() || !value.contains("presets") || !value.at("presets").is_array()) {
    return Malformed("expected {\"presets\": [...]}");
  }
  std::vector<net::EgressPreset> presets;
  for (const json& item : value.at("presets")) {
    if (!item.is_object()) return Malformed("a preset is not an object");
    net::EgressPreset preset{.name = OptionalString(item, "name"), .source = OptionalString(item, "source")};
    if (auto domains = item.find("domains"); domains != item.end() && domains->is_array()) {
      for (const json& domain : *domains) {
        if (domain.is_string()) preset.domains.push_back(domain.get<std::string>());
      }
    }
    presets.push_back(std::move(preset));
  }
  return presets;
}

std::string CreateVmRequestToJson(const CreateVmRequest& request) {
  ordered_json body{
      {"image", request.image}, {"cpus", request.cpus}, {"memory_mib", request.memory_mib}};
  // Without anything set, the daemon's default applies: send nothing.
  const NetworkRequest& network = request.network;
  if (HasNetworkRequest(network)) {
    ordered_json object = ordered_json::object();
    if (network.mode) object["mode"] = NetworkModeName(*network.mode);
    if (!network.allow_tcp_ports.empty()) object["allow_tcp_ports"] = network.allow_tcp_ports;
    if (!network.allow_cidrs.empty()) object["allow_cidrs"] = network.allow_cidrs;
    if (!network.allow_domains.empty()) object["allow_domains"] = network.allow_domains;
    if (!network.presets.empty()) object["presets"] = network.presets;
    if (!network.bridge.empty()) object["bridge"] = network.bridge;
    if (network.bandwidth_bytes_per_sec) {
      object["bandwidth_bytes_per_sec"] = *network.bandwidth_bytes_per_sec;
    }
    body["network"] = std::move(object);
  }
  // "auto" is the daemon's default too; leaving it out keeps the body what
  // a daemon without boot modes accepts.
  if (request.boot != BootMode::kAuto) body["boot"] = BootModeName(request.boot);
  if (!request.mounts.empty()) body["mounts"] = MountsToJson(request.mounts);
  return DumpJson(body);
}

std::chrono::milliseconds TimeoutFromSeconds(double seconds) {
  // Whole microseconds first: 2.007 * 1000 is 2007.0000000000002 in binary,
  // which ceil() would make 2008 ms on a ms -> s -> ms round trip.
  const double micros = std::round(seconds * 1e6);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(micros / 1000)));
}

double TimeoutToSeconds(std::chrono::milliseconds timeout) { return timeout.count() / 1000.0; }

std::string ExecRequestToJson(const protocol::ExecRequest& request) {
  ordered_json body{{"argv", request.argv}};
  if (!request.env.empty()) body["env"] = request.env;
  if (!request.cwd.empty()) body["cwd"] = request.cwd;
  if (request.timeout.count() > 0) body["timeout_sec"] = TimeoutToSeconds(request.timeout);
  if (!request.user.empty()) body["user"] = request.user;
  if (request.tty) {
    body["tty"] = true;
    body["rows"] = request.size.rows;
    body["cols"] = request.size.cols;
  }
  if (request.detach) body["detach"] = true;
  if (!request.stdin_data.empty()) {
    if (IsValidUtf8(request.stdin_data)) {
      body["stdin"] = request.stdin_data;
    } else {
      body["stdin_b64"] = Base64Encode(request.stdin_data);
    }
  }
  return DumpJson(body);
}

std::string SaveSnapshotRequestToJson(const std::string& name) {
  return DumpJson(ordered_json{{"name", name}});
}

std::string DumpJson(const json& value, int indent) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string DumpJson(const ordered_json& value, int indent) {
  return value.dump(indent, ' ', false, ordered_json::error_handler_t::replace);
}

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kTimeout: return 504;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kTooLarge: return 413;
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

std::string ErrorBody(const Error& error) {
  return DumpJson(ordered_json{{"error", error.message}, {"code", ErrorCodeName(error.code)}});
}

Error ErrorFromResponse(int http_status, std::string_view body) {
  json value = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (value.is_object() && value.contains("error") && value.at("error").is_string()) {
    ErrorCode code = ErrorCode::kInternal;
    if (value.contains("code") && value.at("code").is_string()) {
      code = ErrorCodeFromName(value.at("code").get<std::string>());
    }
    return Error{code, value.at("error").get<std::string>()};
  }
  ErrorCode code = ErrorCode::kInternal;
  for (ErrorCode candidate : kAllErrorCodes) {
    if (HttpStatusFor(candidate) == http_status) code = candidate;
  }
  return Error{code, "agentvmd answered HTTP " + std::to_string(http_status)};
}

namespace {

// An output event is {"type":"stdout","data":"<JSON string>"} for valid
// UTF-8, else {"type":"stdout","data_b64":"<base64>"}: written and, for
// lines exactly so shaped, read back without a JSON tree. This is the hot
// path of exec output (every 64 KiB of it), where nlohmann's per-character
// string building cost more than the guest channel itself.
constexpr std::string_view kOutputSuffix = "\"}";

std::string OutputPrefix(protocol::OutputStream stream, bool base64) {
  return std::string(R"({"type":")") + (stream == protocol::OutputStream::kStdout ? "stdout" : "stderr") +
         (base64 ? R"(","data_b64":")" : R"(","data":")");
}

// JSON string escaping of valid UTF-8: quote, backslash and control
// characters; everything else as is (what nlohmann's dump writes).
void AppendJsonEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t plain = 0;  // start of the run not yet copied
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text, plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
  }
  out.append(text, plain, text.size() - plain);
}

// The inverse of AppendJsonEscaped: the escapes it writes, and "\/".
// nullopt for anything else (another \u escape, a raw quote or control
// character), which the full parser then handles or refuses.
std::optional<std::string> UnescapeJsonString(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  std::size_t plain = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const auto c = static_cast<unsigned char>(body[i]);
    if (c == '"' || c < 0x20) return std::nullopt;
    if (c != '\\') continue;
    out.append(body, plain, i - plain);
    if (++i == body.size()) return std::nullopt;
    switch (body[i]) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        // Only \u00XX below 0x80 (what the writer emits for controls).
        if (i + 4 >= body.size() || body.compare(i + 1, 2, "00") != 0) return std::nullopt;
        const int high = HexDigitValue(body[i + 3]);
        const int low = HexDigitValue(body[i + 4]);
        if (high < 0 || low < 0 || high > 7) return std::nullopt;
        out += static_cast<char>(high * 16 + low);
        i += 4;
        break;
      }
      default: return std::nullopt;
    }
    plain = i + 1;
  }
  out.append(body, plain, body.size() - plain);
  return out;
}

// The event in `line` if it is an output event as ExecOutputEvent writes
// it and needs no JSON parser (base64, or a string with the writer's escapes).
std::optional<ExecEvent> ParseOutputEventFast(std::string_view line) {
  if (!line.ends_with(kOutputSuffix)) return std::nullopt;
  for (auto stream : {protocol::OutputStream::kStdout, protocol::OutputStream::kStderr}) {
    for (bool base64 : {true, false}) {
      const std::string prefix = OutputPrefix(stream, base64);
      if (line.size() < prefix.size() + kOutputSuffix.size() || !line.starts_with(prefix)) continue;
      std::string_view body = line.substr(prefix.size(), line.size() - prefix.size() - kOutputSuffix.size());
      ExecEvent event;
      event.type = stream == protocol::OutputStream::kStdout ? ExecEvent::Type::kStdout : ExecEvent::Type::kStderr;
      if (base64) {
        auto bytes = Base64Decode(body);
        if (!bytes) return std::nullopt;  // the parser says what is wrong
        event.data = std::move(*bytes);
      } else {
        auto text = UnescapeJsonString(body);
        if (!text) return std::nullopt;
        event.data = std::move(*text);
      }
      return event;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string ExecOutputEvent(protocol::OutputStream stream, std::string_view bytes) {
  const bool base64 = !IsValidUtf8(bytes);
  std::string line = OutputPrefix(stream, base64);
  // One allocation: the encoded size plus the suffix and newline (text
  // grows only by its escapes, rare in program output).
  line.reserve(line.size() + (base64 ? (bytes.size() + 2) / 3 * 4 : bytes.size() + bytes.size() / 16) +
               kOutputSuffix.size() + 1);
  if (base64) {
    AppendBase64(line, bytes);
  } else {
    AppendJsonEscaped(line, bytes);
  }
  line += kOutputSuffix;
  line += '\n';
  return line;
}

std::string ExecExitEvent(const protocol::ExecResult& result) {
  ordered_json event{{"type", "exit"},
                     {"exit_code", result.exit_code ? ordered_json(*result.exit_code) : ordered_json(nullptr)},
                     {"signal", result.signal ? ordered_json(*result.signal) : ordered_json(nullptr)},
             {"timed_out", result.timed_out},
             {"status", result.ShellStatus()}};
  return DumpJson(event) + "\n";
}

std::string ExecErrorEvent(const Error& error) {
  return DumpJson(ordered_json{{"type", "error"}, {"error", error.message},
                               {"code", ErrorCodeName(error.code)}}) +
         "\n";
}

Result<ExecEvent> ParseExecEvent(std::string_view line) {
  if (auto fast = ParseOutputEventFast(line)) return std::move(*fast);
  json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object() || !value.contains("type") || !value.at("type").is_string()) {
    return Malformed("exec event is not an object with a type");
  }
  std::string type = value.at("type").get<std::string>();
  ExecEvent event;
  if (type == "stdout" || type == "stderr") {
    event.type = type == "stdout" ? ExecEvent::Type::kStdout : ExecEvent::Type::kStderr;
    if (auto it = value.find("data"); it != value.end() && it->is_string()) {
      event.data = it->get<std::string>();
    } else if (auto b64 = value.find("data_b64"); b64 != value.end() && b64->is_string()) {
      auto bytes = Base64Decode(b64->get<std::string>());
      if (!bytes) return Malformed("exec event with bad data_b64");
      event.data = std::move(*bytes);
    } else {
      return Malformed("output event without data");
    }
  } else if (type == "exit") {
    event.type = ExecEvent::Type::kExit;
    event.result.exit_code = OptionalInt(value, "exit_code");
    event.result.signal = OptionalInt(value, "signal");
    auto timed_out = value.find("timed_out");
    event.result.timed_out = timed_out != value.end() && timed_out->is_boolean() &&
                             timed_out->get<bool>();
  } else if (type == "error") {
    event.type = ExecEvent::Type::kError;
    event.error = Error{ErrorCodeFromName(OptionalString(value, "code")),
                        OptionalString(value, "error")};
  } else {
    return Malformed("unknown exec event type \"" + type + "\"");
  }
  return event;
}

}  // namespace agentvm::api
