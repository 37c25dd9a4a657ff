// The agentvm command line, parsed into a typed command. Pure: no I/O except
// reading the environment for `--env NAME` without a value (passed in as a
// lookup function so tests control it).
#pragma once

#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>


#include "supervisor/vm_types.h"

namespace agentvm::cli {

// `agentvm net`'s flags (cli/net_command.h).
struct NetChange {
  std::vector<std::string> allow_domains;  // added to the list (if not on it)
  std::vector<std::string> deny_domains;   // taken off the list (if on it)
  std::vector<std::string> presets;        // --preset: added (if not there)
  std::vector<std::string> no_presets;     // --no-preset: taken off (its names go, the VM's own stay)
  std::vector<std::uint16_t> allow_ports;
  std::vector<std::uint16_t> deny_ports;
  std::vector<std::string> allow_cidrs;
  std::vector<std::string> deny_cidrs;
  // --bandwidth RATE: a limit; --no-bandwidth: none (inner nullopt).
  std::optional<std::optional<std::uint64_t>> bandwidth;
};

inline constexpr char kDefaultSocket[] = "/run/agentvm/agentvm.sock";

enum class CommandKind {
  kHelp, kRun, kCreate, kList, kInspect, kExec, kCopy, kLogs, kStop, kRemove,
  kRelease, kPools, kPresets, kEgress, kSnapshot, kShell, kDoctor, kNet, kEvents,
};

// `agentvm snapshot save|ls|restore|rm`.
enum class SnapshotAction { kSave, kList, kRestore, kRemove };

struct ExecSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string workdir;
  double timeout_sec = 0;  // 0: none
  bool forward_stdin = false;  // -i: the local stdin streams to the command
  bool tty = false;            // -t: a terminal in the VM, the local one raw
  bool detach = false;         // -d: start it and return; it runs on alone
  std::string user;            // -u: empty for the image's default user
};

struct CopySpec {
  bool to_vm = true;  // LOCAL -> ID:PATH; false for ID:PATH -> LOCAL
  std::string local;  // "-" is stdin / stdout
  std::string vm_id;
  std::string guest_path;
  bool recursive = false;  // -r: a directory tree (a tar stream with "-")
};

// `agentvm events`'s flags: the query of GET /v1/events, checked with the
// API's own rules (api::ParseEventsQuery) before it is sent.
struct EventsSpec {
  std::string vm;                  // --vm ID
  std::vector<std::string> types;  // --type T (repeatable)
  std::optional<std::uint64_t> since;  // --since SEQ
};

// The query of GET /v1/events that asks for `events`: without `follow` (-f)
// what the daemon's ring holds; with it every new event (--since SEQ: the
// ring's after SEQ first).
std::map<std::string, std::string> EventsQueryParams(const EventsSpec& events, bool follow);

struct CliCommand {
  CommandKind kind = CommandKind::kHelp;
  std::string socket_path = kDefaultSocket;
  std::string help_topic;         // kHelp: a command name, or "" for the overview
  // run, create: the request itself; --net and friends are checked with
  // the API's own rules (api::ValidateNetworkRequest), CIDRs canonical.
  CreateVmRequest vm;
  ExecSpec exec;                  // run, exec
  std::vector<std::string> ids;   // inspect, exec, logs, snapshot: one; stop, rm, release: one or more
  bool force = false;             // rm -f
  bool json = false;              // ls, pools, presets, egress, snapshot ls, events: --json
  bool follow = false;            // egress, events -f: stream new entries until interrupted
  CopySpec copy;                  // cp
  SnapshotAction snapshot_action = SnapshotAction::kList;  // snapshot
  std::string snapshot_name;      // snapshot save, restore, rm: valid (IsValidSnapshotName)
  std::vector<std::string> daemon_args;  // doctor: agentvmd's options (--config FILE, ...)
  NetChange net;                  // net: the flags, canonical
  EventsSpec events;              // events
};

struct UsageError {
  std::string message;
  std::string command;  // whose --help to point at; "" for the overview
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// `args` excludes argv[0]. `env_socket` is $AGENTVM_SOCKET (empty if unset);
// --socket wins over it.
std::expected<CliCommand, UsageError> ParseCli(const std::vector<std::string>& args,
                                               std::string_view env_socket,
                                               const EnvLookup& lookup_env);

// Usage text for one command, or the overview for "".
std::string HelpText(std::string_view command);

// True for commands whose exit status is the guest command's: their own
// failures use 125 (like docker) so the two cannot be confused.
bool RelaysCommandStatus(CommandKind kind);

}  // namespace agentvm::cli
