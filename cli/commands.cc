#include "cli/commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cli/cli_format.h"
#include "cli/copy_command.h"
#include "cli/doctor_command.h"
#include "cli/events_command.h"
#include "cli/net_command.h"
#include "cli/interactive_exec.h"
#include "cli/ndjson_lines.h"
#include "cli/terminal.h"
#include "cli/write_all.h"
#include "common/unique_fd.h"
#include "supervisor/api/json_codec.h"

namespace agentvm::cli {
namespace {

constexpr int kAgentvmFailed = 125;  // run/exec: agentvm's own failure
constexpr int kInterrupted = 130;
constexpr int kOutputClosed = 128 + SIGPIPE;
constexpr int kFailed = 1;

class Printer {
 public:
  explicit Printer(const CliContext& context) : context_(context) {}
  bool Out(std::string_view text) const { return WriteAll(context_.out_fd, text); }
  void Error(std::string_view message) const {
    WriteAll(context_.err_fd, "agentvm: " + std::string(message) + "\n");
  }

 private:
  const CliContext& context_;
};

std::int64_t Now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// Prints agentvmd's JSON indented, or the error; the exit status.
int PrintJson(const Result<std::string>& body, const Printer& print) {
  if (!body) {
    print.Error(body.error().message);
    return kFailed;
  }
  print.Out(api::DumpJson(nlohmann::ordered_json::parse(*body, nullptr, false), 2) + "\n");
  return 0;
}

protocol::ExecRequest ToExecRequest(const ExecSpec& spec) {
  protocol::ExecRequest request;
  request.argv = spec.argv;
  request.env = spec.env;
  request.cwd = spec.workdir;
  request.timeout = api::TimeoutFromSeconds(spec.timeout_sec);
  request.user = spec.user;
  request.tty = spec.tty;
  request.detach = spec.detach;
  return request;
}

// -i or -t: over the WebSocket, stdin streaming while output does.
Result<protocol::ExecResult> RelayInteractive(ApiClient& client, const std::string& id, const ExecSpec& spec,
                                              const CliContext& context, InterruptScope& interrupts,
                                              bool* output_closed) {
  protocol::ExecRequest request = ToExecRequest(spec);
  if (spec.tty) request.size = TerminalSizeOf(context.in_fd).value_or(protocol::TerminalSize{});
  InteractiveIo io{.in_fd = context.in_fd,
                   .out_fd = context.out_fd,
                   .err_fd = context.err_fd,
                   .forward_stdin = spec.forward_stdin,
                   .tty = spec.tty,
                   .output_closed = output_closed};
  return RunInteractiveExec(client.socket_path(), id, request, io, interrupts.active_fd_slot());
}

// Neither -i nor -t: the NDJSON stream, output only.
Result<protocol::ExecResult> RelayOutput(ApiClient& client, const std::string& id, const ExecSpec& spec,
                                         const CliContext& context, InterruptScope& interrupts,
                                         bool* output_closed) {
  auto relay = [&](protocol::OutputStream stream, std::string_view data) {
    int fd = stream == protocol::OutputStream::kStdout ? context.out_fd : context.err_fd;
    if (!WriteAll(fd, data)) *output_closed = true;
    return !*output_closed;
  };
  client.set_active_fd_slot(interrupts.active_fd_slot());
  auto result = client.Exec(id, ToExecRequest(spec), relay);
  client.set_active_fd_slot(nullptr);
  return result;
}

// Runs the command and relays its output; returns the status to exit with.
int ExecAndRelay(ApiClient& client, const std::string& id, const ExecSpec& spec,
                 const CliContext& context, InterruptScope& interrupts) {
  Printer print(context);
  if (spec.detach) {
    auto started = client.ExecDetached(id, ToExecRequest(spec));
    if (!started) {
      print.Error(started.error().message);
      return kAgentvmFailed;
    }
    return 0;
  }
  bool output_closed = false;
  auto result = spec.forward_stdin || spec.tty
                    ? RelayInteractive(client, id, spec, context, interrupts, &output_closed)
                    : RelayOutput(client, id, spec, context, interrupts, &output_closed);
  if (interrupts.interrupted()) return kInterrupted;
  if (output_closed) return kOutputClosed;
  if (!result) {
    print.Error(result.error().message);
    return kAgentvmFailed;
  }
  return result->ShellStatus();
}

int Run(const CliCommand& command, ApiClient& client, const CliContext& context,
        InterruptScope& interrupts) {
  Printer print(context);
  // Creation is not interrupted midway: until it returns there is no id to
  // clean up with, so a Ctrl-C is acted on right after.
  auto vm = client.CreateVm(command.vm);
  if (!vm) {
    print.Error("cannot create VM: " + vm.error().message);
    return interrupts.interrupted() ? kInterrupted : kAgentvmFailed;
  }
  int status = interrupts.interrupted()
                   ? kInterrupted
                   : ExecAndRelay(client, vm->id, command.exec, context, interrupts);
  // Released, not destroyed: a VM from a warm pool is recycled into it (a
  // fresh clone takes its place); any other VM is removed all the same.
  auto released = client.ReleaseVm(vm->id);
  if (!released) {
    print.Error("could not release VM " + vm->id + ": " + released.error().message +
                " (remove it with: agentvm rm -f " + vm->id + ")");
    if (status == kInterrupted) return status;
  } else if (status == kInterrupted) {
    print.Error("interrupted; VM " + vm->id + " released");
  }
  return status;
}

int Exec(const CliCommand& command, ApiClient& client, const CliContext& context,
         InterruptScope& interrupts) {
  const std::string& id = command.ids.front();
  int status = ExecAndRelay(client, id, command.exec, context, interrupts);
  if (status == kInterrupted) {
    // agentvmd ends a command whose client went (it did not ask to detach).
    Printer(context).Error("interrupted; the command in " + id + " was killed");
  }
  return status;
}

int Create(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  auto vm = client.CreateVm(command.vm);
  if (!vm) {
    print.Error("cannot create VM: " + vm.error().message);
    return kFailed;
  }
  print.Out(vm->id + "\n");
  return 0;
}

int List(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  if (command.json) return PrintJson(client.ListVmsJson(), print);
  auto vms = client.ListVms();
  if (!vms) {
    print.Error(vms.error().message);
    return kFailed;
  }
  print.Out(FormatVmTable(*vms, Now()));
  return 0;
}

int Inspect(const CliCommand& command, ApiClient& client, const CliContext& context) {
  return PrintJson(client.GetVmJson(command.ids.front()), Printer(context));
}

int Pools(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  if (command.json) return PrintJson(client.ListPoolsJson(), print);
  auto pools = client.ListPools();
  if (!pools) {
    print.Error(pools.error().message);
    return kFailed;
  }
  print.Out(FormatPoolTable(*pools));
  return 0;
}

int Presets(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  if (command.json) return PrintJson(client.ListPresetsJson(), print);
  auto presets = client.ListPresets();
  if (!presets) {
    print.Error(presets.error().message);
    return kFailed;
  }
  print.Out(FormatPresetTable(*presets));
  return 0;
}

int Egress(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  const std::string& id = command.ids.front();
  if (!command.follow) {
    auto entries = client.EgressLog(id, 0);
    if (!entries) {
      print.Error(entries.error().message);
      return kFailed;
    }
    if (!command.json) return print.Out(FormatEgressTable(*entries)) ? 0 : kFailed;
    std::string lines;
    for (const net::EgressEntry& entry : *entries) lines += net::EgressEntryToJson(entry) + "\n";
    return print.Out(lines) ? 0 : kFailed;
  }
  // -f: agentvmd streams the kept entries, then each new one as it comes.
  if (!command.json && !print.Out(FormatEgressHeaderLine())) return kFailed;
  NdjsonLines lines("an egress log line", [&](std::string_view line) -> Result<void> {
    std::string text = std::string(line) + "\n";
    if (!command.json) {
      auto entry = net::EgressEntryFromJson(line);
      if (!entry) return Fail(ErrorCode::kInternal, "agentvmd sent a bad egress log line: " + entry.error().message);
      text = FormatEgressLine(*entry);
    }
    if (!print.Out(text)) return Fail(ErrorCode::kUnavailable, "cannot write the egress log out");
    return {};
  });
  auto sink = [&](std::string_view bytes) { return lines.Feed(bytes); };
  auto streamed = client.FollowEgressLog(id, sink);
  if (streamed) streamed = lines.Finish();
  if (!streamed) {
    print.Error(streamed.error().message);
    return kFailed;
  }
  // Only agentvmd ends it: the VM's network went (or was not there).
  print.Error("the egress log of " + id + " ended: its network is gone (stopped or removed)");
  return 0;
}

int Snapshot(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  const std::string& id = command.ids.front();
  const std::string& name = command.snapshot_name;
  Result<void> done;
  switch (command.snapshot_action) {
    case SnapshotAction::kList: {
      if (command.json) return PrintJson(client.ListSnapshotsJson(id), print);
      auto snapshots = client.ListSnapshots(id);
      if (!snapshots) {
        print.Error(snapshots.error().message);
        return kFailed;
      }
      print.Out(FormatSnapshotTable(*snapshots, Now()));
      return 0;
    }
    case SnapshotAction::kSave: {
      auto saved = client.SaveSnapshot(id, name);
      if (!saved) done = Fail(saved.error());
      break;
    }
    case SnapshotAction::kRestore:
      done = client.RestoreSnapshot(id, name);
      break;
    case SnapshotAction::kRemove:
      done = client.DeleteSnapshot(id, name);
      break;
  }
  if (!done) {
    print.Error(done.error().message);
    return kFailed;
  }
  print.Out(name + "\n");
  return 0;
}

int Logs(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  auto text = client.Console(command.ids.front());
  if (!text) {
    print.Error(text.error().message);
    return kFailed;
  }
  print.Out(*text);
  return 0;
}

// stop, rm and release: each id in turn, going on past failures.
int StopRemoveOrRelease(const CliCommand& command, ApiClient& client, const CliContext& context) {
  Printer print(context);
  int status = 0;
  for (const std::string& id : command.ids) {
    Result<void> done;
    if (command.kind == CommandKind::kStop) {
      auto stopped = client.StopVm(id);
      if (!stopped) done = Fail(stopped.error());
    } else if (command.kind == CommandKind::kRelease) {
      done = client.ReleaseVm(id);
    } else {
      done = client.DestroyVm(id, command.force);
    }
    if (done) {
      print.Out(id + "\n");
    } else {
      print.Error(done.error().message);
      status = kFailed;
    }
  }
  return status;
}

int Copy(const CliCommand& command, ApiClient& client, const CliContext& context) {
  auto done = RunCopy(command.copy, client, context);
  if (!done) {
    Printer(context).Error(done.error().message);
    return kFailed;
  }
  return 0;
}

}  // namespace

int RunCommand(const CliCommand& command, ApiClient& client, const CliContext& context,
               InterruptScope& interrupts) {
  switch (command.kind) {
    case CommandKind::kRun: return Run(command, client, context, interrupts);
    case CommandKind::kExec:
    case CommandKind::kShell: return Exec(command, client, context, interrupts);
    case CommandKind::kCreate: return Create(command, client, context);
    case CommandKind::kList: return List(command, client, context);
    case CommandKind::kInspect: return Inspect(command, client, context);
    case CommandKind::kLogs: return Logs(command, client, context);
    case CommandKind::kStop:
    case CommandKind::kRemove:
    case CommandKind::kRelease: return StopRemoveOrRelease(command, client, context);
    case CommandKind::kPools: return Pools(command, client, context);
    case CommandKind::kPresets: return Presets(command, client, context);
    case CommandKind::kEgress: return Egress(command, client, context);
    case CommandKind::kSnapshot: return Snapshot(command, client, context);
    case CommandKind::kCopy: return Copy(command, client, context);
    case CommandKind::kDoctor: return Doctor(command, context);
    case CommandKind::kNet: return Net(command, client, context);
    case CommandKind::kEvents: return Events(command, client, context);
    case CommandKind::kHelp: break;
  }
  return 0;
}

}  // namespace agentvm::cli
