#include "cli/cli_args.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>

#include "cli/command_table.h"
#include "netsetup/domain_list.h"
#include "netsetup/egress_presets.h"
#include "protocol/exec_types.h"
#include "supervisor/api/request_validation.h"
#include "supervisor/names.h"
#include "supervisor/vm_mounts.h"

namespace agentvm::cli {
namespace {

struct SnapshotActionName {
  std::string_view name;
  SnapshotAction action;
};

constexpr SnapshotActionName kSnapshotActions[] = {
    {"save", SnapshotAction::kSave},
    {"ls", SnapshotAction::kList},
    {"list", SnapshotAction::kList},
    {"restore", SnapshotAction::kRestore},
    {"rm", SnapshotAction::kRemove},
};

// Walks the arguments of one command. Options may be spelled "--name VALUE"
// or "--name=VALUE"; everything after "--" is positional.
class ArgReader {
 public:
  ArgReader(const std::vector<std::string>& args, std::size_t start, std::string command)
      : args_(args), next_(start), command_(std::move(command)) {}

  bool done() const { return next_ >= args_.size(); }
  std::size_t position() const { return next_; }
  const std::string& peek() const { return args_[next_]; }
  std::string take() { return args_[next_++]; }
  std::vector<std::string> rest() {
    std::vector<std::string> out(args_.begin() + static_cast<long>(next_), args_.end());
    next_ = args_.size();
    return out;
  }

  bool at_option() const {
    return !done() && peek().size() > 1 && peek()[0] == '-' && peek() != "--";
  }
  bool at_separator() const { return !done() && peek() == "--"; }

  // If the next argument is option `name` (or `alias`), consumes it.
  bool flag(std::string_view name, std::string_view alias = {}) {
    if (done() || !(peek() == name || (!alias.empty() && peek() == alias))) return false;
    ++next_;
    return true;
  }

  // If the next argument is option `name` taking a value, consumes both.
  // `alias` is a short spelling ("-e"), which takes its value only as the
  // next argument.
  std::optional<std::expected<std::string, UsageError>> value(std::string_view name,
                                                              std::string_view alias = {}) {
    if (done()) return std::nullopt;
    const std::string& arg = peek();
    if (arg.size() > name.size() && arg.compare(0, name.size(), name) == 0 &&
        arg[name.size()] == '=') {
      ++next_;
      return arg.substr(name.size() + 1);
    }
    if (arg != name && (alias.empty() || arg != alias)) return std::nullopt;
    ++next_;
    if (done()) return std::unexpected(Error("option " + arg + " needs a value"));
    return take();
  }

  UsageError Error(std::string message) const { return UsageError{std::move(message), command_}; }

 private:
  const std::vector<std::string>& args_;
  std::size_t next_;
  std::string command_;
};

// A whole number in [min, max] (the API's own range for the field).
std::expected<int, UsageError> ParseInt(const ArgReader& reader, std::string_view option,
                                        const std::string& text, int min, int max) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::unexpected(reader.Error(std::string(option) + " expects a whole number, not \"" +
                                        QuoteForError(text) + "\""));
  }
  if (value < min || value > max) {
    return std::unexpected(reader.Error(std::string(option) + " must be between " + std::to_string(min) +
                                        " and " + std::to_string(max) + ", not " + text));
  }
  return value;
}

std::expected<double, UsageError> ParseSeconds(const ArgReader& reader, const std::string& text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value) ||
      value < 0) {
    return std::unexpected(
        reader.Error("--timeout expects a number of seconds (>= 0), not \"" + text + "\""));
  }
  return value;
}

// --vm ID, --type T (repeatable), --since SEQ (-f is CliCommand::follow).
std::optional<UsageError> TakeEventsOption(ArgReader& reader, EventsSpec& events, bool* matched) {
  *matched = true;
  if (auto vm = reader.value("--vm")) {
    if (!*vm) return vm->error();
    events.vm = vm->value();
    return std::nullopt;
  }
  if (auto type = reader.value("--type")) {
    if (!*type) return type->error();
    events.types.push_back(type->value());
    return std::nullopt;
  }
  if (auto since = reader.value("--since")) {
    if (!*since) return since->error();
    std::uint64_t seq = 0;
    const std::string& text = since->value();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return reader.Error("--since expects an event's seq (a whole number), not \"" + QuoteForError(text) + "\"");
    }
    events.since = seq;
    return std::nullopt;
  }
  *matched = false;
  return std::nullopt;
}

// Consumes a --socket option wherever it appears before the command's
// positional arguments.
std::optional<UsageError> TakeSocket(ArgReader& reader, CliCommand& command, bool* matched) {
  *matched = false;
  if (auto socket = reader.value("--socket")) {
    *matched = true;
    if (!*socket) return socket->error();
    if (socket->value().empty()) return reader.Error("--socket needs a path");
    command.socket_path = socket->value();
  }
  return std::nullopt;
}

// The flags' names in the shared network checks' messages.
constexpr api::NetworkFieldNames kNetworkFlags{.mode = "--net",
                                               .allow_tcp_ports = "--allow-port",
                                               .allow_cidrs = "--allow-cidr",
                                               .allow_domains = "--allow-domain",
                                               .presets = "--preset",
                                               .bridge = "--bridge",
                                               .bandwidth = "--bandwidth"};

std::expected<std::uint16_t, UsageError> ParsePort(const ArgReader& reader, std::string_view flag,
                                                   const std::string& text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535) {
    return std::unexpected(reader.Error(std::string(flag) + " expects a TCP port (1-65535), not \"" +
                                        QuoteForError(text) + "\""));
  }
  return static_cast<std::uint16_t>(value);
}

// Bytes per second, optionally with a decimal suffix: k (10^3), M (10^6),
// G (10^9). The range is the shared check's.
std::expected<std::uint64_t, UsageError> ParseBandwidth(const ArgReader& reader,
                                                        const std::string& text) {
  std::uint64_t value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, value);
  std::uint64_t multiplier = 1;
  if (ec == std::errc() && end + 1 == last) {
    switch (*end) {
      case 'k': case 'K': multiplier = 1000; ++end; break;
      case 'M': multiplier = 1000 * 1000; ++end; break;
      case 'G': multiplier = 1000 * 1000 * 1000; ++end; break;
      default: break;
    }
  }
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && end == last &&
       value > std::numeric_limits<std::uint64_t>::max() / multiplier)) {
    return std::unexpected(reader.Error(
        "--bandwidth must be between " + std::to_string(api::kMinBandwidthBytesPerSec) + " and " +
        std::to_string(api::kMaxBandwidthBytesPerSec) + " bytes per second, not " + text));
  }
  if (ec != std::errc() || end != last) {
    return std::unexpected(reader.Error(
        "--bandwidth expects bytes per second, optionally with a suffix k, M or G (10M is "
        "10000000), not \"" + QuoteForError(text) + "\""));
  }
  return value * multiplier;
}

std::optional<UsageError> TakeNetworkOption(ArgReader& reader, NetworkRequest& network,
                                            bool* matched) {
  *matched = true;
  if (auto mode = reader.value("--net")) {
    if (!*mode) return mode->error();
    auto parsed = NetworkModeFromName(mode->value());
    if (!parsed) {
      return reader.Error("--net expects nat-filtered, isolated or bridge, not \"" +
                          QuoteForError(mode->value()) + "\"");
    }
    network.mode = *parsed;
    return std::nullopt;
  }
  if (auto port = reader.value("--allow-port")) {
    if (!*port) return port->error();
    auto number = ParsePort(reader, "--allow-port", port->value());
    if (!number) return number.error();
    network.allow_tcp_ports.push_back(*number);
    return std::nullopt;
  }
  if (auto cidr = reader.value("--allow-cidr")) {
    if (!*cidr) return cidr->error();
    auto canonical = api::CanonicalCidr(cidr->value(), kNetworkFlags.allow_cidrs);
    if (!canonical) return reader.Error(canonical.error().message);
    network.allow_cidrs.push_back(std::move(*canonical));
    return std::nullopt;
  }
  if (auto domain = reader.value("--allow-domain")) {
    if (!*domain) return domain->error();
    auto canonical = net::CanonicalDomainPattern(domain->value(), kNetworkFlags.allow_domains);
    if (!canonical) return reader.Error(canonical.error().message);
    network.allow_domains.push_back(std::move(*canonical));
    return std::nullopt;
  }
  if (auto preset = reader.value("--preset")) {
    if (!*preset) return preset->error();
    // Only the syntax here: which presets exist is the daemon's to say.
    if (auto ok = net::ValidatePresetName(preset->value(), kNetworkFlags.presets); !ok) {
      return reader.Error(ok.error().message);
    }
    network.presets.push_back(preset->value());
    return std::nullopt;
  }
  if (auto bridge = reader.value("--bridge")) {
    if (!*bridge) return bridge->error();
    if (auto ok = api::ValidateInterfaceName(bridge->value(), kNetworkFlags.bridge); !ok) {
      return reader.Error(ok.error().message);
    }
    network.bridge = bridge->value();
    return std::nullopt;
  }
  if (auto rate = reader.value("--bandwidth")) {
    if (!*rate) return rate->error();
    auto bytes = ParseBandwidth(reader, rate->value());
    if (!bytes) return bytes.error();
    network.bandwidth_bytes_per_sec = *bytes;
    return std::nullopt;
  }
  *matched = false;
  return std::nullopt;
}

// `net`'s flags: each names an entry to add to or take off the VM's
// current policy; checked here as run's flags are.
std::optional<UsageError> TakeNetChangeOption(ArgReader& reader, NetChange& change, bool* matched) {
  *matched = true;
  for (auto [flag, list] : {std::pair{"--allow-domain", &change.allow_domains}, std::pair{"--deny-domain", &change.deny_domains}}) {
    if (auto domain = reader.value(flag)) {
      if (!*domain) return domain->error();
      auto canonical = net::CanonicalDomainPattern(domain->value(), flag);
      if (!canonical) return reader.Error(canonical.error().message);
      list->push_back(std::move(*canonical));
      return std::nullopt;
    }
  }
  for (auto [flag, list] : {std::pair{"--preset", &change.presets}, std::pair{"--no-preset", &change.no_presets}}) {
    if (auto preset = reader.value(flag)) {
      if (!*preset) return preset->error();
      // Only the syntax here: which presets exist is the daemon's to say.
      if (auto ok = net::ValidatePresetName(preset->value(), flag); !ok) return reader.Error(ok.error().message);
      list->push_back(preset->value());
      return std::nullopt;
    }
  }
  for (auto [flag, list] : {std::pair{"--allow-port", &change.allow_ports}, std::pair{"--deny-port", &change.deny_ports}}) {
    if (auto port = reader.value(flag)) {
      if (!*port) return port->error();
      auto number = ParsePort(reader, flag, port->value());
      if (!number) return number.error();
      list->push_back(*number);
      return std::nullopt;
    }
  }
  for (auto [flag, list] : {std::pair{"--allow-cidr", &change.allow_cidrs}, std::pair{"--deny-cidr", &change.deny_cidrs}}) {
    if (auto cidr = reader.value(flag)) {
      if (!*cidr) return cidr->error();
      auto canonical = api::CanonicalCidr(cidr->value(), flag);
      if (!canonical) return reader.Error(canonical.error().message);
      list->push_back(std::move(*canonical));
      return std::nullopt;
    }
  }
  if (auto rate = reader.value("--bandwidth")) {
    if (!*rate) return rate->error();
    auto bytes = ParseBandwidth(reader, rate->value());
    if (!bytes) return bytes.error();
    NetworkRequest limited{.bandwidth_bytes_per_sec = *bytes};
    if (auto ok = api::ValidateNetworkRequest(limited, kNetworkFlags); !ok) return reader.Error(ok.error().message);
    change.bandwidth = std::optional<std::uint64_t>(*bytes);
    return std::nullopt;
  }
  if (reader.flag("--no-bandwidth")) {
    change.bandwidth = std::optional<std::uint64_t>();
    return std::nullopt;
  }
  *matched = false;
  return std::nullopt;
}

// -v HOST:GUEST[:ro|:rw], as docker has it; a relative HOST is taken from
// the current directory here, since the daemon has another one.
std::optional<UsageError> ParseVolume(ArgReader& reader, const std::string& text, VmMount& mount) {
  std::string spec = text;
  if (spec.ends_with(":ro") || spec.ends_with(":rw")) {
    mount.readonly = spec.ends_with(":ro");
    spec.resize(spec.size() - 3);
  }
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    return reader.Error("--volume expects HOST:GUEST[:ro], not \"" + QuoteForError(text) + "\"");
  }
  std::filesystem::path host = spec.substr(0, colon);
  std::error_code ec;
  if (host.is_relative()) {
    host = (std::filesystem::current_path(ec) / host).lexically_normal();
    if (ec) return reader.Error("--volume " + text + ": the current directory: " + ec.message());
  }
  mount.source = host.string();
  while (mount.source.size() > 1 && mount.source.back() == '/') mount.source.pop_back();
  mount.target = spec.substr(colon + 1);
  return std::nullopt;
}

std::optional<UsageError> TakeVmOption(ArgReader& reader, CreateVmRequest& vm, bool* matched) {
  *matched = true;
  if (auto image = reader.value("--image")) {
    if (!*image) return image->error();
    if (auto ok = ValidateImageName(image->value()); !ok) return reader.Error(ok.error().message);
    vm.image = image->value();
    return std::nullopt;
  }
  if (auto cpus = reader.value("--cpus")) {
    if (!*cpus) return cpus->error();
    auto number = ParseInt(reader, "--cpus", cpus->value(), kMinCpus, kMaxCpus);
    if (!number) return number.error();
    vm.cpus = *number;
    return std::nullopt;
  }
  if (auto memory = reader.value("--memory")) {
    if (!*memory) return memory->error();
    auto number = ParseInt(reader, "--memory", memory->value(), kMinMemoryMib, kMaxMemoryMib);
    if (!number) return number.error();
    vm.memory_mib = *number;
    return std::nullopt;
  }
  if (auto boot = reader.value("--boot")) {
    if (!*boot) return boot->error();
    auto mode = BootModeFromName(boot->value());
    if (!mode) {
      return reader.Error("--boot expects auto, restore or cold, not \"" +
                          QuoteForError(boot->value()) + "\"");
    }
    vm.boot = *mode;
    return std::nullopt;
  }
  if (auto volume = reader.value("--volume", "-v")) {
    if (!*volume) return volume->error();
    VmMount mount;
    if (auto bad = ParseVolume(reader, volume->value(), mount)) return bad;
    vm.mounts.push_back(std::move(mount));
    if (auto ok = ValidateMounts(vm.mounts); !ok) return reader.Error("--volume: " + ok.error().message);
    return std::nullopt;
  }
  return TakeNetworkOption(reader, vm.network, matched);
}

std::optional<UsageError> TakeExecOption(ArgReader& reader, ExecSpec& exec,
                                         const EnvLookup& lookup_env, bool* matched) {
  *matched = true;
  if (auto timeout = reader.value("--timeout")) {
    if (!*timeout) return timeout->error();
    auto seconds = ParseSeconds(reader, timeout->value());
    if (!seconds) return seconds.error();
    exec.timeout_sec = *seconds;
    return std::nullopt;
  }
  if (auto env = reader.value("--env", "-e")) {
    if (!*env) return env->error();
    const std::string& text = env->value();
    auto eq = text.find('=');
    std::string name = text.substr(0, eq);
    if (auto valid = api::ValidateEnvName(name); !valid) return reader.Error(valid.error().message);
    if (eq != std::string::npos) {
      exec.env[name] = text.substr(eq + 1);
    } else if (auto inherited = lookup_env(name)) {
      exec.env[name] = *inherited;  // "--env NAME" passes the local value, like docker
    } else {
      return reader.Error("--env " + name + ": not set here; use --env " + name + "=VALUE");
    }
    return std::nullopt;
  }
  if (auto workdir = reader.value("--workdir", "-w")) {
    if (!*workdir) return workdir->error();
    exec.workdir = workdir->value();
    return std::nullopt;
  }
  if (auto user = reader.value("--user", "-u")) {
    if (!*user) return user->error();
    if (!protocol::IsValidExecUser(user->value())) {
      return reader.Error("--user expects a user name or uid, not \"" + QuoteForError(user->value()) + "\"");
    }
    exec.user = user->value();
    return std::nullopt;
  }
  // -i, -t, -d and their clusters (-it), as docker spells them.
  if (!reader.done() && reader.peek().size() >= 2 && reader.peek()[0] == '-' && reader.peek()[1] != '-' &&
      reader.peek().find_first_not_of("itd", 1) == std::string::npos) {
    for (char c : reader.take().substr(1)) {
      if (c == 'i') exec.forward_stdin = true;
      if (c == 't') exec.tty = true;
      if (c == 'd') exec.detach = true;
    }
    return std::nullopt;
  }
  if (reader.flag("--interactive")) {
    exec.forward_stdin = true;
    return std::nullopt;
  }
  if (reader.flag("--tty")) {
    exec.tty = true;
    return std::nullopt;
  }
  if (reader.flag("--detach")) {
    exec.detach = true;
    return std::nullopt;
  }
  *matched = false;
  return std::nullopt;
}

std::optional<UsageError> TakeCommandLine(ArgReader& reader, ExecSpec& exec) {
  if (reader.at_separator()) reader.take();
  exec.argv = reader.rest();
  if (exec.argv.empty()) return reader.Error("missing the command to run (after --)");
  return std::nullopt;
}

// Splits "ID:/path"; nullopt when `arg` is a local path.
std::optional<std::pair<std::string, std::string>> SplitRemote(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string id = arg.substr(0, colon);
  if (!IsValidVmId(id)) return std::nullopt;
  return std::make_pair(id, arg.substr(colon + 1));
}

// `snapshot ACTION ID [NAME]`: the positionals, after the options were taken.
std::optional<UsageError> ParseSnapshotArgs(const ArgReader& reader,
                                            const std::vector<std::string>& positional,
                                            CliCommand& command) {
  if (positional.empty()) return reader.Error("missing what to do: save, ls, restore or rm");
  const SnapshotActionName* action = nullptr;
  for (const auto& candidate : kSnapshotActions) {
    if (candidate.name == positional[0]) action = &candidate;
  }
  if (!action) {
    return reader.Error("unknown snapshot command \"" + QuoteForError(positional[0]) +
                        "\" (expected save, ls, restore or rm)");
  }
  command.snapshot_action = action->action;
  const bool named = action->action != SnapshotAction::kList;
  const std::size_t wanted = named ? 3 : 2;
  if (positional.size() < 2) return reader.Error("missing the VM id");
  if (named && positional.size() < 3) return reader.Error("missing the snapshot name");
  if (positional.size() > wanted) {
    return reader.Error("unexpected argument \"" + positional[wanted] + "\"");
  }
  if (command.json && named) return reader.Error("--json is only for snapshot ls");
  command.ids = {positional[1]};
  if (named) {
    if (auto ok = ValidateSnapshotName(positional[2]); !ok) {
      return reader.Error(ok.error().message);
    }
    command.snapshot_name = positional[2];
  }
  return std::nullopt;
}

std::expected<CliCommand, UsageError> ParseCommand(CliCommand command, ArgReader& reader,
                                                   const EnvLookup& lookup_env) {
  std::vector<std::string> positional;
  const bool takes_command_line =
      command.kind == CommandKind::kRun || command.kind == CommandKind::kExec;
  const bool takes_exec_options = takes_command_line || command.kind == CommandKind::kShell;
  // `exec ID CMD...`: the first positional is the id, the second starts CMD.
  const std::size_t positionals_before_command_line = command.kind == CommandKind::kExec ? 1 : 0;
  // `doctor [AGENTVMD-OPTIONS...]`: the options are agentvmd's (it runs the
  // checks), passed on unread.
  const bool asks_help = !reader.done() && (reader.peek() == "--help" || reader.peek() == "-h");
  if (command.kind == CommandKind::kDoctor && !asks_help) {
    command.daemon_args = reader.rest();
    return command;
  }

  while (!reader.done()) {
    if (takes_command_line && (reader.at_separator() ||
                               (!reader.at_option() &&
                                positional.size() == positionals_before_command_line))) {
      if (auto error = TakeCommandLine(reader, command.exec)) return std::unexpected(*error);
      break;
    }
    if (reader.at_separator()) {
      reader.take();
      for (auto& arg : reader.rest()) positional.push_back(std::move(arg));
      break;
    }
    if (!reader.at_option()) {
      positional.push_back(reader.take());
      continue;
    }
    if (reader.flag("--help", "-h")) {
      CliCommand help;
      help.kind = CommandKind::kHelp;
      help.help_topic = std::string(CommandOf(command.kind).name);
      return help;
    }
    bool matched = false;
    if (auto error = TakeSocket(reader, command, &matched)) return std::unexpected(*error);
    if (matched) continue;
    if (command.kind == CommandKind::kRun || command.kind == CommandKind::kCreate) {
      if (auto error = TakeVmOption(reader, command.vm, &matched)) return std::unexpected(*error);
      if (matched) continue;
    }
    if (command.kind == CommandKind::kNet) {
      if (auto error = TakeNetChangeOption(reader, command.net, &matched)) return std::unexpected(*error);
      if (matched) continue;
    }
    if (takes_exec_options) {
      if (auto error = TakeExecOption(reader, command.exec, lookup_env, &matched)) {
        return std::unexpected(*error);
      }
      if (matched) continue;
    }
    if (command.kind == CommandKind::kEvents) {
      if (auto error = TakeEventsOption(reader, command.events, &matched)) return std::unexpected(*error);
      if (matched) continue;
    }
    const bool takes_json = command.kind == CommandKind::kList ||
                            command.kind == CommandKind::kPools ||
                            command.kind == CommandKind::kPresets ||
                            command.kind == CommandKind::kEgress ||
                            command.kind == CommandKind::kSnapshot ||
                            command.kind == CommandKind::kEvents;
    if (takes_json && reader.flag("--json")) {
      command.json = true;
      continue;
    }
    if (command.kind == CommandKind::kCopy && reader.flag("--recursive", "-r")) {
      command.copy.recursive = true;
      continue;
    }
    const bool follows = command.kind == CommandKind::kEgress || command.kind == CommandKind::kEvents;
    if (follows && reader.flag("--follow", "-f")) {
      command.follow = true;
      continue;
    }
    if (command.kind == CommandKind::kRemove && reader.flag("--force", "-f")) {
      command.force = true;
      continue;
    }
    return std::unexpected(reader.Error("unknown option " + reader.peek()));
  }

  auto expect_count = [&](std::size_t min, std::size_t max,
                          const char* what) -> std::optional<UsageError> {
    if (positional.size() < min) return reader.Error(std::string("missing ") + what);
    if (positional.size() > max) {
      return reader.Error("unexpected argument \"" + positional[max] + "\"");
    }
    return std::nullopt;
  };

  std::optional<UsageError> error;
  if (command.kind == CommandKind::kRun || command.kind == CommandKind::kCreate) {
    // The flags only make sense together (--bridge needs --net bridge, ...),
    // so they are checked once all are read, before any request is sent.
    if (auto ok = api::ValidateNetworkRequest(command.vm.network, kNetworkFlags); !ok) {
      return std::unexpected(reader.Error(ok.error().message));
    }
  }
  switch (command.kind) {
    case CommandKind::kRun:
      if (command.exec.argv.empty()) error = reader.Error("missing the command to run (after --)");
      break;
    case CommandKind::kExec:
      error = expect_count(1, 1, "the VM id");
      if (!error && command.exec.argv.empty()) {
        error = reader.Error("missing the command to run (after --)");
      }
      break;
    case CommandKind::kShell:
      // The user's login shell, on a terminal, as ssh gives it.
      error = expect_count(1, 1, "the VM id");
      command.exec.argv = {"/bin/sh", "-c", "exec \"${SHELL:-/bin/sh}\" -l"};
      command.exec.forward_stdin = true;
      command.exec.tty = true;
      break;
    case CommandKind::kCreate:
    case CommandKind::kList:
      error = expect_count(0, 0, "");
      break;
    case CommandKind::kInspect:
    case CommandKind::kEgress:
    case CommandKind::kLogs:
    case CommandKind::kNet:
      error = expect_count(1, 1, "the VM id");
      break;
    case CommandKind::kStop:
    case CommandKind::kRemove:
    case CommandKind::kRelease:
      error = expect_count(1, positional.size(), "the VM id");
      break;
    case CommandKind::kPools:
    case CommandKind::kPresets:
      error = expect_count(0, 0, "");
      break;
    case CommandKind::kEvents:
      error = expect_count(0, 0, "");
      if (!error) {
        // The daemon would refuse what its own parser refuses: say so now.
        if (auto query = api::ParseEventsQuery(EventsQueryParams(command.events, command.follow)); !query) {
          error = reader.Error(query.error().message);
        }
      }
      break;
    case CommandKind::kSnapshot:
      error = ParseSnapshotArgs(reader, positional, command);
      break;
    case CommandKind::kCopy: {
      error = expect_count(2, 2, "SOURCE and DESTINATION");
      if (error) break;
      auto source = SplitRemote(positional[0]);
      auto destination = SplitRemote(positional[1]);
      if (source && destination) {
        error = reader.Error("copying between two VMs is not supported");
      } else if (!source && !destination) {
        error = reader.Error("one of SOURCE and DESTINATION must be ID:PATH");
      } else {
        command.copy.to_vm = destination.has_value();
        auto& remote = destination ? *destination : *source;
        command.copy.vm_id = remote.first;
        command.copy.guest_path = remote.second;
        command.copy.local = destination ? positional[0] : positional[1];
        if (command.copy.guest_path.empty() || command.copy.guest_path[0] != '/') {
          error = reader.Error("the path inside the VM must be absolute: " + command.copy.vm_id +
                               ":" + command.copy.guest_path);
        }
      }
      break;
    }
    case CommandKind::kDoctor:  // only `doctor --help` gets here
    case CommandKind::kHelp:
      error = expect_count(0, 1, "");
      if (!error && !positional.empty()) command.help_topic = positional[0];
      break;
  }
  if (!error && RelaysCommandStatus(command.kind) && command.exec.detach &&
      (command.exec.forward_stdin || command.exec.tty)) {
    error = reader.Error("-d runs the command on its own: it cannot take -i or -t");
  }
  if (!error && command.kind == CommandKind::kRun && command.exec.detach) {
    error = reader.Error("run removes its VM when the command ends: use create, then exec -d");
  }
  if (error) return std::unexpected(*error);
  // A remote terminal draws for the local one: it gets its type, as ssh
  // passes it (unless --env set one).
  if (command.exec.tty && !command.exec.env.contains("TERM")) {
    if (auto term = lookup_env("TERM")) command.exec.env["TERM"] = *term;
  }
  if (command.kind != CommandKind::kCopy && command.kind != CommandKind::kSnapshot) {
    command.ids = std::move(positional);
  }
  if (command.kind == CommandKind::kHelp) command.ids.clear();
  return command;
}

}  // namespace

std::map<std::string, std::string> EventsQueryParams(const EventsSpec& events, bool follow) {
  std::map<std::string, std::string> query;
  query["follow"] = follow ? "true" : "false";
  query["since"] = std::to_string(events.since.value_or(0));
  if (!events.vm.empty()) query["vm"] = events.vm;
  std::string types;
  for (const std::string& type : events.types) types += (types.empty() ? "" : ",") + type;
  if (!events.types.empty()) query["type"] = types;
  return query;
}

bool RelaysCommandStatus(CommandKind kind) { return CommandOf(kind).relays_status; }

std::expected<CliCommand, UsageError> ParseCli(const std::vector<std::string>& args,
                                               std::string_view env_socket,
                                               const EnvLookup& lookup_env) {
  CliCommand command;
  if (!env_socket.empty()) command.socket_path = std::string(env_socket);

  ArgReader reader(args, 0, "");
  while (reader.at_option()) {
    if (reader.flag("--help", "-h")) return command;  // kHelp, overview
    bool matched = false;
    if (auto error = TakeSocket(reader, command, &matched)) return std::unexpected(*error);
    if (!matched) return std::unexpected(reader.Error("unknown option " + reader.peek()));
  }
  if (reader.done()) {
    return std::unexpected(reader.Error("missing a command"));
  }
  std::string name = reader.take();
  const CommandInfo* found = FindCommand(name);
  if (!found) return std::unexpected(reader.Error("unknown command \"" + name + "\""));
  command.kind = found->kind;
  ArgReader command_reader(args, reader.position(), std::string(CommandOf(found->kind).name));
  return ParseCommand(std::move(command), command_reader, lookup_env);
}

}  // namespace agentvm::cli
