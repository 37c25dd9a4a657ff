#include "protocol/messages.h"

#include <limits>
#include <utility>

namespace agentvm::protocol {
namespace {

using nlohmann::json;

std::unexpected<std::string> Bad(const Frame& frame, std::string_view what) {
  return std::unexpected<std::string>(frame.type + ": " + std::string(what));
}

// Optional-field readers: absent or null gives nullopt, a wrong type an error.
ParseResult<std::optional<std::string>> OptString(const Frame& frame, const char* key) {
  auto it = frame.header.find(key);
  if (it == frame.header.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return Bad(frame, std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

ParseResult<std::optional<std::uint64_t>> OptUint(const Frame& frame, const char* key,
                                                  std::uint64_t max) {
  auto it = frame.header.find(key);
  if (it == frame.header.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_unsigned() || it->get<std::uint64_t>() > max) {
    return Bad(frame, std::string("\"") + key + "\" is not an unsigned integer in range");
  }
  return it->get<std::uint64_t>();
}

ParseResult<std::optional<int>> OptInt(const Frame& frame, const char* key) {
  auto it = frame.header.find(key);
  if (it == frame.header.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return Bad(frame, std::string("\"") + key + "\" is not an integer");
  std::int64_t v = it->get<std::int64_t>();
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
    return Bad(frame, std::string("\"") + key + "\" is out of range");
  }
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return Bad(frame, std::string("\"") + key + "\" is out of range");
  }
  return static_cast<int>(v);
}

ParseResult<std::optional<bool>> OptBool(const Frame& frame, const char* key) {
  auto it = frame.header.find(key);
  if (it == frame.header.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return Bad(frame, std::string("\"") + key + "\" is not a boolean");
  return it->get<bool>();
}

ParseResult<std::string> RequiredPath(const Frame& frame) {
  auto path = OptString(frame, "path");
  if (!path) return std::unexpected(path.error());
  if (!*path || (*path)->empty()) return Bad(frame, "\"path\" is missing");
  return std::move(**path);
}

constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();

// "rows" and "cols", each 1 to 65535; absent ones keep TerminalSize's defaults.
ParseResult<TerminalSize> ParseTerminalSize(const Frame& frame) {
  TerminalSize size;
  for (auto [key, slot] : {std::pair{"rows", &size.rows}, std::pair{"cols", &size.cols}}) {
    auto value = OptUint(frame, key, 65535);
    if (!value) return std::unexpected(value.error());
    if (*value && **value == 0) return Bad(frame, std::string("\"") + key + "\" is 0");
    if (*value) *slot = static_cast<std::uint16_t>(**value);
  }
  return size;
}
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

}  // namespace

Frame PingFrame(std::uint32_t stream) { return MakeFrame(kTypePing, stream); }

Frame ExecFrame(std::uint32_t stream, const ExecRequest& request, std::string_view stdin_chunk,
                bool stdin_eof, std::optional<std::uint64_t> output_window) {
  // Fields at their default are left out: the guest parses every header
  // under emulation, where each key costs.
  json fields = {{"argv", request.argv}};
  if (!request.env.empty()) fields["env"] = request.env;
  if (!request.cwd.empty()) fields["cwd"] = request.cwd;
  if (request.timeout.count() > 0) fields["timeout_ms"] = static_cast<std::uint64_t>(request.timeout.count());
  if (!stdin_eof) fields["stdin_eof"] = false;
  if (output_window) fields["output_window"] = *output_window;
  if (!request.user.empty()) fields["user"] = request.user;
  if (request.tty) {
    fields["tty"] = true;
    fields["rows"] = request.size.rows;
    fields["cols"] = request.size.cols;
  }
  return MakeFrame(kTypeExec, stream, std::move(fields), std::string(stdin_chunk));
}

Frame StdinFrame(std::uint32_t stream, std::string_view data, bool eof) {
  return MakeFrame(kTypeStdin, stream, {{"eof", eof}}, std::string(data));
}

Frame SignalFrame(std::uint32_t stream, int signal) {
  return MakeFrame(kTypeSignal, stream, {{"signal", signal}});
}

Frame WriteFileFrame(std::uint32_t stream, const WriteFileRequest& request, std::string_view data) {
  json fields = {
      {"path", request.path}, {"offset", request.offset}, {"truncate", request.truncate}};
  if (request.mode) fields["mode"] = *request.mode;
  return MakeFrame(kTypeWriteFile, stream, std::move(fields), std::string(data));
}

Frame ReadFileFrame(std::uint32_t stream, const ReadFileRequest& request) {
  return MakeFrame(
      kTypeReadFile, stream,
      {{"path", request.path}, {"offset", request.offset}, {"length", request.length}});
}

Frame ShutdownFrame(std::uint32_t stream) { return MakeFrame(kTypeShutdown, stream); }

Frame ConfigureFrame(std::uint32_t stream, const GuestIdentity& identity) {
  json fields = json::object();
  if (identity.network) {
    json network = json::object();
    const GuestNetwork& net = *identity.network;
    if (net.address) network["address"] = *net.address;
    if (net.gateway) network["gateway"] = *net.gateway;
    if (net.dns) network["dns"] = *net.dns;
    if (net.mac) network["mac"] = *net.mac;
    fields["network"] = std::move(network);
  }
  if (identity.hostname) fields["hostname"] = *identity.hostname;
  if (!identity.mounts.empty()) {
    json mounts = json::array();
    for (const GuestMount& mount : identity.mounts) {
      mounts.push_back({{"tag", mount.tag}, {"target", mount.target}, {"readonly", mount.readonly}});
    }
    fields["mounts"] = std::move(mounts);
  }
  if (identity.time_unix_ns) {
    // Unsigned, as the parser wants it, whenever it can be: a frame built in
    // process must parse like one that came over the wire.
    if (*identity.time_unix_ns >= 0) {
      fields["time_unix_ns"] = static_cast<std::uint64_t>(*identity.time_unix_ns);
    } else {
      fields["time_unix_ns"] = *identity.time_unix_ns;
    }
  }
  return MakeFrame(kTypeConfigure, stream, std::move(fields), identity.entropy);
}

Frame OutputAckFrame(std::uint32_t stream, std::uint64_t bytes) {
  return MakeFrame(kTypeOutputAck, stream, {{"bytes", bytes}});
}

Frame ResizeFrame(std::uint32_t stream, TerminalSize size) {
  return MakeFrame(kTypeResize, stream, {{"rows", size.rows}, {"cols", size.cols}});
}

Frame StdinAckFrame(std::uint32_t stream, std::uint64_t bytes) {
  return MakeFrame(kTypeStdinAck, stream, {{"bytes", bytes}});
}

Frame PongFrame(std::uint32_t stream) {
  return MakeFrame(kTypePong, stream, {{"version", kProtocolVersion}});
}

Frame StartedFrame(std::uint32_t stream, int pid) {
  return MakeFrame(kTypeStarted, stream, {{"pid", pid}});
}

Frame OutputFrame(std::uint32_t stream, OutputStream which, std::string_view data) {
  return MakeFrame(which == OutputStream::kStdout ? kTypeStdout : kTypeStderr, stream,
                   json::object(), std::string(data));
}

Frame ExitFrame(std::uint32_t stream, const ExecResult& result) {
  // Only what happened: the agent builds one per exec under emulation.
  json fields = json::object();
  if (result.exit_code) fields["code"] = *result.exit_code;
  if (result.signal) fields["signal"] = *result.signal;
  if (result.timed_out) fields["timed_out"] = true;
  return MakeFrame(kTypeExit, stream, std::move(fields));
}

Frame OkFrame(std::uint32_t stream, std::optional<std::uint64_t> size) {
  json fields = json::object();
  if (size) fields["size"] = *size;
  return MakeFrame(kTypeOk, stream, std::move(fields));
}

Frame DataFrame(std::uint32_t stream, const FileData& data, std::string_view bytes) {
  return MakeFrame(kTypeData, stream, {{"size", data.size}, {"mode", data.mode}, {"eof", data.eof}},
                   std::string(bytes));
}

Frame ErrorFrame(std::uint32_t stream, std::string_view code, std::string_view message) {
  return MakeFrame(kTypeError, stream, {{"code", code}, {"message", message}});
}

ParseResult<ExecStart> ParseExec(const Frame& frame) {
  ExecStart start;
  auto argv = frame.header.find("argv");
  if (argv == frame.header.end() || !argv->is_array())
    return Bad(frame, "\"argv\" is not an array");
  for (const json& arg : *argv) {
    if (!arg.is_string()) return Bad(frame, "\"argv\" holds a non-string");
    start.request.argv.push_back(arg.get<std::string>());
  }
  if (start.request.argv.empty()) return Bad(frame, "argv is empty");
  auto env = frame.header.find("env");
  if (env != frame.header.end() && !env->is_null()) {
    if (!env->is_object()) return Bad(frame, "\"env\" is not an object");
    for (auto it = env->begin(); it != env->end(); ++it) {
      if (!it.value().is_string())
        return Bad(frame, "\"env\" value of " + it.key() + " is not a string");
      start.request.env[it.key()] = it.value().get<std::string>();
    }
  }
  auto cwd = OptString(frame, "cwd");
  if (!cwd) return std::unexpected(cwd.error());
  start.request.cwd = cwd->value_or("");
  auto timeout = OptUint(frame, "timeout_ms", kU32Max * 1000ull);
  if (!timeout) return std::unexpected(timeout.error());
  start.request.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(timeout->value_or(0)));
  auto eof = OptBool(frame, "stdin_eof");
  if (!eof) return std::unexpected(eof.error());
  start.stdin_eof = eof->value_or(true);
  auto window = OptUint(frame, "output_window", kMaxOutputWindow);
  if (!window) return std::unexpected(window.error());
  if (*window && **window == 0) return Bad(frame, "\"output_window\" is 0");
  start.output_window = *window;
  auto user = OptString(frame, "user");
  if (!user) return std::unexpected(user.error());
  start.request.user = user->value_or("");
  if (!start.request.user.empty() && !IsValidExecUser(start.request.user)) {
    return Bad(frame, "\"user\" is not a user name or uid");
  }
  auto tty = OptBool(frame, "tty");
  if (!tty) return std::unexpected(tty.error());
  start.request.tty = tty->value_or(false);
  if (start.request.tty) {
    auto size = ParseTerminalSize(frame);
    if (!size) return std::unexpected(size.error());
    start.request.size = *size;
  }
  start.request.stdin_data = frame.payload;
  return start;
}

ParseResult<StdinChunk> ParseStdin(const Frame& frame) {
  auto eof = OptBool(frame, "eof");
  if (!eof) return std::unexpected(eof.error());
  return StdinChunk{frame.payload, eof->value_or(false)};
}

ParseResult<int> ParseSignal(const Frame& frame) {
  auto signal = OptInt(frame, "signal");
  if (!signal) return std::unexpected(signal.error());
  if (!*signal || **signal <= 0 || **signal >= 65)
    return Bad(frame, "\"signal\" is not a signal number");
  return **signal;
}

ParseResult<WriteFileRequest> ParseWriteFile(const Frame& frame) {
  WriteFileRequest request;
  auto path = RequiredPath(frame);
  if (!path) return std::unexpected(path.error());
  request.path = std::move(*path);
  auto mode = OptUint(frame, "mode", 07777);
  if (!mode) return std::unexpected(mode.error());
  if (*mode) request.mode = static_cast<std::uint32_t>(**mode);
  auto offset = OptUint(frame, "offset", kU64Max);
  if (!offset) return std::unexpected(offset.error());
  request.offset = offset->value_or(0);
  auto truncate = OptBool(frame, "truncate");
  if (!truncate) return std::unexpected(truncate.error());
  request.truncate = truncate->value_or(false);
  return request;
}

ParseResult<ReadFileRequest> ParseReadFile(const Frame& frame) {
  ReadFileRequest request;
  auto path = RequiredPath(frame);
  if (!path) return std::unexpected(path.error());
  request.path = std::move(*path);
  auto offset = OptUint(frame, "offset", kU64Max);
  if (!offset) return std::unexpected(offset.error());
  request.offset = offset->value_or(0);
  auto length = OptUint(frame, "length", kU64Max);
  if (!length) return std::unexpected(length.error());
  request.length = length->value_or(kFileChunkBytes);
  return request;
}

ParseResult<GuestIdentity> ParseConfigure(const Frame& frame) {
  GuestIdentity identity;
  auto network = frame.header.find("network");
  if (network != frame.header.end() && !network->is_null()) {
    if (!network->is_object()) return Bad(frame, "\"network\" is not an object");
    GuestNetwork& net = identity.network.emplace();
    for (auto [key, slot] : {std::pair{"address", &net.address}, std::pair{"gateway", &net.gateway},
                             std::pair{"dns", &net.dns}, std::pair{"mac", &net.mac}}) {
      auto it = network->find(key);
      if (it == network->end() || it->is_null()) continue;
      if (!it->is_string())
        return Bad(frame, std::string("\"network.") + key + "\" is not a string");
      *slot = it->get<std::string>();
    }
  }
  auto hostname = OptString(frame, "hostname");
  if (!hostname) return std::unexpected(hostname.error());
  identity.hostname = std::move(*hostname);
  auto mounts = frame.header.find("mounts");
  if (mounts != frame.header.end() && !mounts->is_null()) {
    if (!mounts->is_array()) return Bad(frame, "\"mounts\" is not an array");
    for (const json& item : *mounts) {
      auto tag = item.is_object() ? item.find("tag") : item.end();
      auto target = item.is_object() ? item.find("target") : item.end();
      if (!item.is_object() || tag == item.end() || !tag->is_string() || target == item.end() || !target->is_string()) {
        return Bad(frame, "a mount is not an object with string \"tag\" and \"target\"");
      }
      auto readonly = item.find("readonly");
      if (readonly != item.end() && !readonly->is_boolean()) return Bad(frame, "a mount's \"readonly\" is not a boolean");
      identity.mounts.push_back(GuestMount{.tag = tag->get<std::string>(),
                                           .target = target->get<std::string>(),
                                           .readonly = readonly != item.end() && readonly->get<bool>()});
    }
  }
  auto time = OptUint(frame, "time_unix_ns",
                      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
  if (!time) return std::unexpected(time.error());
  if (*time) identity.time_unix_ns = static_cast<std::int64_t>(**time);
  identity.entropy = frame.payload;
  if (auto bad = CheckIdentity(identity)) return Bad(frame, *bad);
  return identity;
}

ParseResult<TerminalSize> ParseResize(const Frame& frame) { return ParseTerminalSize(frame); }

ParseResult<std::uint64_t> ParseAck(const Frame& frame) {
  auto bytes = OptUint(frame, "bytes", kU64Max);
  if (!bytes) return std::unexpected(bytes.error());
  if (!*bytes || **bytes == 0) return Bad(frame, "\"bytes\" is missing or 0");
  return **bytes;
}

ParseResult<int> ParsePong(const Frame& frame) {
  auto version = OptInt(frame, "version");
  if (!version) return std::unexpected(version.error());
  if (!*version) return Bad(frame, "\"version\" is missing");
  return **version;
}

ParseResult<int> ParseStarted(const Frame& frame) {
  auto pid = OptInt(frame, "pid");
  if (!pid) return std::unexpected(pid.error());
  if (!*pid) return Bad(frame, "\"pid\" is missing");
  return **pid;
}

ParseResult<ExecResult> ParseExit(const Frame& frame) {
  ExecResult result;
  auto code = OptInt(frame, "code");
  if (!code) return std::unexpected(code.error());
  auto signal = OptInt(frame, "signal");
  if (!signal) return std::unexpected(signal.error());
  auto timed_out = OptBool(frame, "timed_out");
  if (!timed_out) return std::unexpected(timed_out.error());
  // A guest may send any integer; beyond these ranges ShellStatus() would
  // overflow or clash with the shell's own statuses.
  if (*code && (**code < 0 || **code > 255)) return Bad(frame, "\"code\" is not an exit status (0-255)");
  if (*signal && (**signal <= 0 || **signal >= 65)) return Bad(frame, "\"signal\" is not a signal number");
  result.exit_code = *code;
  result.signal = *signal;
  result.timed_out = timed_out->value_or(false);
  return result;
}

ParseResult<std::optional<std::uint64_t>> ParseOk(const Frame& frame) {
  return OptUint(frame, "size", kU64Max);
}

ParseResult<FileData> ParseData(const Frame& frame) {
  FileData data;
  auto size = OptUint(frame, "size", kU64Max);
  if (!size) return std::unexpected(size.error());
  auto mode = OptUint(frame, "mode", 07777);
  if (!mode) return std::unexpected(mode.error());
  auto eof = OptBool(frame, "eof");
  if (!eof) return std::unexpected(eof.error());
  if (!*size || !*eof) return Bad(frame, "\"size\" or \"eof\" is missing");
  data.size = **size;
  data.mode = static_cast<std::uint32_t>(mode->value_or(0));
  data.eof = **eof;
  return data;
}

ParseResult<ErrorReply> ParseError(const Frame& frame) {
  auto code = OptString(frame, "code");
  if (!code) return std::unexpected(code.error());
  auto message = OptString(frame, "message");
  if (!message) return std::unexpected(message.error());
  return ErrorReply{code->value_or(std::string(kCodeInternal)), message->value_or("")};
}

}  // namespace agentvm::protocol
