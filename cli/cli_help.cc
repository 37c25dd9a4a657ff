// Usage texts of agentvm and its commands (declared in cli_args.h).
#include <algorithm>
#include <string>
#include <string_view>

#include "cli/cli_args.h"
#include "cli/command_table.h"

namespace agentvm::cli {

namespace {

// The network flags of `run` and `create`, shared by both usage texts.
constexpr std::string_view kNetworkOptions = R"(Network (default: agentvmd's, normally nat-filtered):
      --net MODE            nat-filtered: NAT to the internet through the egress
                            whitelist (TCP 80, 443, 22, 9418 and DNS to
                            agentvmd's resolver only); isolated: no network
                            device at all; bridge: attach to --bridge, unfiltered
      --allow-port PORT     nat-filtered: also allow outbound TCP PORT
                            (repeatable; not 53)
      --allow-cidr CIDR     nat-filtered: also allow outbound TCP to any port
                            but 53 in subnet CIDR, e.g. 203.0.113.0/24
                            (repeatable)
      --allow-domain NAME   nat-filtered: resolve only the listed names
                            (repeatable; *.example.com admits every name
                            below example.com) and open TCP only to the
                            addresses their answers gave, or --allow-cidr
      --preset NAME         nat-filtered: add the names of egress preset NAME
                            to --allow-domain (repeatable; `agentvm presets`
                            lists them: claude-code, codex, github, npm,
                            pypi, debian and the operator's)
      --bridge NAME         bridge mode: the host bridge to attach to
      --bandwidth RATE      nat-filtered: limit each direction to RATE bytes
                            per second; suffixes k, M, G are powers of 1000
                            (10M = 10^7)

)";

// How run and create bring the VM up, shared by both usage texts.
constexpr std::string_view kBootOption =
    R"(      --boot MODE      auto (default): a ready VM from a matching warm pool,
                       else a restore of the golden snapshot, else a cold
                       boot; restore: skip the pool; cold: always boot the
                       kernel afresh
  -v, --volume HOST:GUEST[:ro]
                       share host directory HOST at GUEST in the VM
                       (virtiofs; repeatable; a relative HOST is from the
                       current directory; :ro read-only). agentvmd must list
                       HOST's tree under mount_roots. A VM with mounts
                       always cold-boots (docs/workspaces.md)
)";

std::string Overview() {
  std::string commands;
  for (const CommandInfo& command : Commands()) {
    if (command.summary.empty()) continue;
    std::string name(command.name);
    name.resize(std::max<std::size_t>(name.size() + 1, 10), ' ');
    commands += "  " + name + std::string(command.summary) + "\n";
  }
  return R"(Usage: agentvm [--socket PATH] COMMAND [ARGS...]

Runs commands in throwaway virtual machines managed by agentvmd.

Commands:
)" + commands + R"(
Options:
  --socket PATH   agentvmd's socket (default $AGENTVM_SOCKET, else
                  /run/agentvm/agentvm.sock)
  -h, --help      show this help; "agentvm COMMAND --help" for a command's

Example:
  agentvm run -- sh -c 'echo hello from $(uname -n)'
)";
}

// The usage text of each command: an exhaustive switch, so the
// compiler warns (-Wswitch) about a CommandKind without one.
std::string UsageText(CommandKind kind) {
  switch (kind) {
    case CommandKind::kRun:
      return R"(Usage: agentvm run [OPTIONS] [--] CMD [ARG...]

Gets a fresh VM (from a warm pool when one matches), runs CMD in it with its
output streamed live, then releases the VM (also on failure and on Ctrl-C): its
disk and memory are thrown away, and a pooled VM's place is refilled with a
clean clone. Exits with CMD's status: its exit code, 128+N if signal N ended
it, 124 if --timeout killed it, 130 on Ctrl-C, and 125 when agentvm itself
failed.

Options:
      --image NAME     guest image (default tiny)
      --cpus N         virtual CPUs (default 1)
      --memory MIB     memory in MiB (default 256)
)" + std::string(kBootOption) + R"(      --timeout SEC    kill CMD after SEC seconds (default: no limit)
  -e, --env K=V        set an environment variable (repeatable); --env K passes
                       the local value of K
  -w, --workdir DIR    working directory inside the VM (default: the user's
                       home)
  -u, --user USER      run CMD as USER, a name or uid in the guest (default:
                       the image's default user, else root)
  -i, --interactive    stream this process's stdin to CMD as CMD reads it
  -t, --tty            give CMD a terminal in the VM; with -i and a local
                       terminal, every key (Ctrl-C too) goes to CMD
      --socket PATH    agentvmd's socket
  -h, --help           show this help

)" + std::string(kNetworkOptions) + R"(Examples:
  agentvm run --timeout 60 -- sh -c 'uname -a; echo done'
  agentvm run --allow-port 8080 -- wget -qO- http://example.com:8080/
  agentvm run --net isolated -- make test
  agentvm run -it --image debian -- claude
)";
    case CommandKind::kCreate:
      return R"(Usage: agentvm create [OPTIONS]

Gets a VM (as run does), waits until its agent answers, and prints its id.
Hand it back with release (or rm -f) when done.

Options:
      --image NAME     guest image (default tiny)
      --cpus N         virtual CPUs (default 1)
      --memory MIB     memory in MiB (default 256)
)" + std::string(kBootOption) + R"(      --socket PATH    agentvmd's socket
  -h, --help           show this help

)" + std::string(kNetworkOptions) + R"(Example:
  agentvm create --memory 512 --bandwidth 10M
  agentvm create --net bridge --bridge br-lab
  agentvm create --boot cold
)";
    case CommandKind::kList:
      return R"(Usage: agentvm ls [--json]

Lists the VMs: ID, IMAGE, STATE, BOOT (how the guest came up: cold, restore
or pool), ADDRESS (the VM's IPv4 address, "-" when it has none), CPUS,
MEMORY, AGE and, for failed or stopped VMs, the REASON (or why a restore
failed and the VM was cold-booted instead). --json prints agentvmd's JSON
instead.
)";
    case CommandKind::kInspect:
      return R"(Usage: agentvm inspect ID

Prints everything agentvmd knows about the VM, as JSON, including its
"network": mode, address, gateway, dns, mac, tap, bridge, the extra
allow_tcp_ports, allow_cidrs and allow_domains, bandwidth_bytes_per_sec and the count of
dropped_connections.
)";
    case CommandKind::kExec:
      return R"(Usage: agentvm exec ID [OPTIONS] [--] CMD [ARG...]

Runs CMD in a running VM, streaming its output, and exits with CMD's status
(as for run; 125 when agentvm itself failed). CMD ends with agentvm: on
Ctrl-C (without -t), or when agentvm is killed, agentvmd kills CMD and
everything it started, unless -d.

Options:
      --timeout SEC    kill CMD after SEC seconds
  -e, --env K=V        set an environment variable (repeatable)
  -w, --workdir DIR    working directory inside the VM (default: the user's
                       home)
  -u, --user USER      run CMD as USER, a name or uid in the guest (default:
                       the image's default user, else root)
  -i, --interactive    stream this process's stdin to CMD as CMD reads it
  -t, --tty            give CMD a terminal in the VM (TERM and the window
                       size follow the local one); with -i and a local
                       terminal, every key (Ctrl-C too) goes to CMD
  -d, --detach         start CMD and return at once; it runs on by itself
                       (its output is dropped) until it ends or times out

Examples:
  agentvm exec -it vm-3f2a9c -- bash
  head -c 50M big.bin | agentvm exec -i vm-3f2a9c -- sha256sum
  agentvm exec -d vm-3f2a9c -- sh -c 'make > /tmp/build.log 2>&1'
)";
    case CommandKind::kShell:
      return R"(Usage: agentvm shell [OPTIONS] ID

Opens a login shell in a running VM on a terminal, as the image's default
user (or -u USER): the same as exec -it ID with the user's login shell.

Options:
  -u, --user USER      log in as USER instead
  -e, --env K=V        set an environment variable (repeatable)
  -w, --workdir DIR    start in DIR instead of the user's home
)";
    case CommandKind::kCopy:
      return R"(Usage: agentvm cp [-r] LOCAL ID:PATH
       agentvm cp [-r] ID:PATH LOCAL

Copies a file into or out of a VM. PATH is absolute. LOCAL may be "-" for
stdin or stdout. A file copied in keeps its permission bits; one copied out
into an existing directory keeps its name. Files of any size stream.

  -r, --recursive   copy a directory tree: what is in LOCAL lands in PATH
                    (made if missing), or what is in PATH lands in LOCAL;
                    modes, mtimes and symlinks (as symlinks) are kept.
                    With "-", the tree is a tar stream on stdin or stdout.
                    In the VM the tree belongs to its default user; out of
                    it, to you (setuid bits and device nodes are dropped,
                    nothing is written outside LOCAL).
)";
    case CommandKind::kEgress:
      return R"(Usage: agentvm egress ID [-f] [--json]

Shows the VM's egress log as agentvmd keeps it in memory (the last 1000
entries): each DNS question a VM with a name list (--allow-domain, --preset)
asked, with TIME (UTC), TYPE, NAME, VERDICT (allowed, refused, refused-type,
failed) and the ADDRESSES it may now connect to; and each connection the
firewall refused, with its protocol as TYPE, the name its address was
learned from as NAME (- if none) and where it went as ADDRESSES.
  -f, --follow   then print each new entry as it happens (agentvmd streams
                 it), until interrupted or the VM's network goes (it stops
                 or is removed); a reader too slow for the VM gets a
                 "dropped" line saying how many entries it missed
  --json         agentvmd's NDJSON, one entry a line
)";
    case CommandKind::kLogs:
      return R"(Usage: agentvm logs ID

Prints the VM's serial console (kernel and init messages).
)";
    case CommandKind::kStop:
      return R"(Usage: agentvm stop ID...

Stops VMs gracefully (the VM is kept; remove it with rm).
)";
    case CommandKind::kRemove:
      return R"(Usage: agentvm rm [-f] ID...

Removes VMs with their disks and runtime files. A running VM is refused
unless -f (--force), which kills it first.
)";
    case CommandKind::kRelease:
      return R"(Usage: agentvm release ID...

Hands VMs back, whatever their state: each is killed and its disk and memory
thrown away. A VM taken from a warm pool is replaced there by a fresh clone
of the golden snapshot. This is what run does with its VM when CMD ends.
)";
    case CommandKind::kPools:
      return R"(Usage: agentvm pools [--json]

Shows agentvmd's warm pools: NAME (image-cpus-memory-network), READY (waiting
to be taken), STARTING (being restored), IN_USE (taken, not yet released),
MIN and MAX (min_ready and max_total from the config), TAKEN, REPLACED (ready
VMs discarded for a failed health check or their TTL) and FAILED (clones that
did not come up) since agentvmd started, GOLDEN (whether the golden snapshot
exists) and LAST_ERROR (the latest failure to fill the pool, if any).
--json prints agentvmd's JSON instead.
)";
    case CommandKind::kPresets:
      return R"(Usage: agentvm presets [--json]

Lists the egress presets `run` and `create` accept as --preset NAME: NAME,
SOURCE (builtin, or config for the operator's egress_presets in agentvmd's
YAML) and the DOMAINS it adds to the VM's --allow-domain list.
--json prints agentvmd's JSON instead.
)";
    case CommandKind::kSnapshot:
      return R"(Usage: agentvm snapshot save ID NAME
       agentvm snapshot ls ID [--json]
       agentvm snapshot restore ID NAME
       agentvm snapshot rm ID NAME

Named snapshots of a running VM: its memory, devices and disk at one moment.
save takes one (the VM pauses while its memory is written), ls lists them
(NAME, SIZE of the saved state, AGE), restore brings the VM back to that
moment, memory and disk, and rm deletes one. Snapshots live with the VM and
go when it is removed or released.

NAME: 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-', not all digits (QEMU would read those as snapshot ids).

Example:
  agentvm snapshot save vm-3f2a9c before-upgrade
  agentvm exec vm-3f2a9c -- sh -c 'rm -rf /work'
  agentvm snapshot restore vm-3f2a9c before-upgrade
)";
    case CommandKind::kNet:
      return R"(Usage: agentvm net ID [--allow-domain NAME]... [--deny-domain NAME]...
                  [--preset NAME]... [--no-preset NAME]...
                  [--allow-port PORT]... [--deny-port PORT]...
                  [--allow-cidr CIDR]... [--deny-cidr CIDR]...
                  [--bandwidth RATE | --no-bandwidth]

Changes a running nat-filtered VM's egress policy at once, without a restart,
and prints the policy now in force (without options: only prints it). Each
flag is relative to the VM's current policy: --allow-* adds an entry,
--deny-* takes one off, --bandwidth sets the limit, --no-bandwidth lifts it.
--preset NAME adds an egress preset's names (`agentvm presets`), --no-preset
NAME takes them off again: only the preset's, so a name the VM was also
given with --allow-domain stays. Taking the last name (or preset) off is
refused: an empty list would let the VM resolve every name. Connections already open stay open; new ones see
the new policy.

Example:
  agentvm net vm-1a2b3c --allow-domain registry.npmjs.org --deny-port 8080
  agentvm net vm-1a2b3c --preset github --no-preset npm
)";
    case CommandKind::kEvents:
      return R"(Usage: agentvm events [-f] [--vm ID] [--type TYPE]... [--since SEQ] [--json]

Prints what happened to the VMs, one line per event: TIME (UTC), VM, TYPE
and the event's details. Without -f it prints the events agentvmd still
holds (its last 1000) and exits; with -f (--follow) it then prints each new
event as it happens, until interrupted (Ctrl-C).

  -f, --follow   keep printing new events
  --vm ID        only this VM's events
  --type TYPE    only events of this type (repeatable): created, started,
                 exec_started, exec_finished, policy_changed,
                 snapshot_saved, snapshot_restored, stopped, failed,
                 adopted, removed
  --since SEQ    only events after the one numbered SEQ (the "seq" --json shows)
  --json         print agentvmd's JSON lines as they come

Example:
  agentvm events -f --vm vm-3f2a9c1b7d4e --type exec_finished
)";
    case CommandKind::kDoctor:
      return R"(Usage: agentvm doctor [AGENTVMD-OPTIONS...]

Checks whether this host can run agentvmd with its settings, and says what
to fix: root, KVM or the TCG fallback and why, vhost-vsock, QEMU and
qemu-img, the images, nftables, the VMs' subnet against the host's networks,
cgroups and the jail's uid range, free disk. It runs `agentvmd --doctor`
(the agentvmd installed beside agentvm, else the one on PATH) with the
options given, so the checks use the daemon's own probes and config, e.g.
--config /etc/agentvm/agentvmd.yaml. Exits 1 when something must be fixed.
)";
    case CommandKind::kHelp:
      break;
  }
  return Overview();
}

}  // namespace

std::string HelpText(std::string_view topic) {
  if (topic.empty()) return Overview();
  const CommandInfo* command = FindCommand(topic);
  return command ? UsageText(command->kind) : Overview();
}

}  // namespace agentvm::cli
